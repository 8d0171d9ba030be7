"""``python -m vaml_ext.exp.aggregate <sweep_dir>``: see :mod:`vaml_ext.exp.aggregate.cli`."""

import sys

from vaml_ext.exp.aggregate.cli import main

sys.exit(main())

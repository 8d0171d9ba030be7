import sys

from vaml_ext.patching.cli import main

sys.exit(main())

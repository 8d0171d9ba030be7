"""Run logging shared by every backend and the sweeps: the run-directory format
(:mod:`.rundir`), progress output (:mod:`.progress`), atomic writes (:mod:`.atomic`),
capture of the global random streams (:mod:`.rng`), the one-writer lock (:mod:`.lock`)
and rotated checkpoints with recovery (:mod:`.ckpt`).

A leaf package: it imports nothing else from ``vaml_ext`` (``tests/test_layering.py``).
"""

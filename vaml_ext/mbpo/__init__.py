"""Value-aware model learning inside mbrl-lib's MBPO (through the ``mbrl.plugins`` seam)."""

"""vaml_ext: value-aware model learning for mbrl-lib's MBPO, an SLBO port and a gridworld study.

Install through the Makefile (``make install``): it pins torch to the local CPU build and
installs the *patched* mbrl-lib (``vaml-patch apply`` then ``pip install -e
third_party/mbrl-lib``). Installing this package alone does not bring mbrl.
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _reqs(name):
    lines = (HERE / "requirements" / name).read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


setup(
    name="vaml_ext",
    version="0.1.0",
    description="Value-aware model losses and stale-value correction for Dyna-style MBRL",
    packages=find_packages(include=["vaml_ext", "vaml_ext.*"]),
    package_data={"vaml_ext": ["**/*.yaml", "**/*.txt", "**/*.toml"]},
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=_reqs("base.txt"),
    # optional: Weights & Biases logging (overrides.wandb=true, slbo wandb=true, figure --wandb; vaml_ext/tracking.py)
    extras_require={"test": _reqs("test.txt"), "wandb": ["wandb>=0.17"]},
    entry_points={
        "console_scripts": ["vaml-patch=vaml_ext.patching.cli:main"],
        # Discovered by the seam that patches/mbrl-lib/0003 adds to mbrl-lib.
        "mbrl.plugins": ["vaml=vaml_ext.mbpo.plugin"],
    },
)

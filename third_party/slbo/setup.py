"""PyTorch port of facebookresearch/slbo (Luo et al. 2019), kept as a third-party upstream.

See PORTING.md for the file-by-file map to the TensorFlow original and the list of
deliberate deviations. Run: ``python -m slbo.main -c configs/algos/slbo.yml configs/envs/hopper.yml``.
"""
from setuptools import find_packages, setup

setup(
    name="slbo",
    version="0.1.0",
    description="Stochastic Lower Bound Optimization (SLBO), PyTorch port",
    packages=find_packages(include=["slbo", "slbo.*"]),
    python_requires=">=3.10",
    install_requires=["torch", "numpy", "gymnasium[mujoco]", "pyyaml", "tensorboard"],
    entry_points={"console_scripts": ["slbo=slbo.main:cli"]},
)

"""Stochastic Lower Bound Optimization (Luo et al., 2019) -- PyTorch port of facebookresearch/slbo."""
__version__ = "0.1.0"

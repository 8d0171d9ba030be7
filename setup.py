"""Shim for tools that still run ``setup.py`` (setuptools' documented form); the metadata,
version and dependencies live in ``pyproject.toml``. Install with ``make install``."""

from setuptools import setup

setup()

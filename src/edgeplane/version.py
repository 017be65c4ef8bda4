"""The version of Edgeplane (``edgeplane.__version__``), a leaf every side may import."""

__version__ = "0.1.0"

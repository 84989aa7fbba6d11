"""series: keep a kernel patch series alive through its respins."""

__version__ = "0.1.0"

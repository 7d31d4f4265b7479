"""dphub: a self-hostable hub for Frictionless Data Packages."""

__version__ = "0.1.0"

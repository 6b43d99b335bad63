"""Voltaro: an OCPP 1.6-J Central System."""

__version__ = "0.1.0"

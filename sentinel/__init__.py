"""Sentinel: a DNS filtering server for home networks with HA cluster sync."""

__version__ = "0.1.0"

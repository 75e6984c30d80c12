"""dtr-sizing-exporter: measures a registry node against the DTR KB sizing rules."""

__version__ = "0.1.0"
DEFAULT_PORT = 9742

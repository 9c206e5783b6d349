"""aifinops: the economics of AI infrastructure, in one embedded analytical store."""

__version__ = "0.1.0"

"""distillguard: detect distillation / extraction-style querying in LLM API usage streams."""

__version__ = "0.1.0"
DETECTOR_VERSION = f"distillguard-{__version__}"

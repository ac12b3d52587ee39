"""Package version (single source for hatch and the OpenAPI document)."""

__version__ = "0.1.0"

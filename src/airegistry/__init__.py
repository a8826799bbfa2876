"""airegistry: an open, self-hostable AI Registry for model customization."""

__version__ = "0.1.0"

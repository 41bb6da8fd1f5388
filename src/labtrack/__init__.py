"""labtrack: a fast, secure-by-default experiment tracking server that speaks the MLflow REST protocol."""

__version__ = "0.1.0"

"""sitegen: a static site generator for analysis reports on AI start-ups."""

__version__ = "0.1.0"

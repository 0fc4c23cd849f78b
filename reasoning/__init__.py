"""ThinkTrace: run, store and explore test-time reasoning strategies."""

__version__ = "0.1.0"

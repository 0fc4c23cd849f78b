"""`python -m reasoning` (and `python -m thinktrace`): the command line, one module per command group;
flags shared by several commands live once in `options.py`."""
from thinktrace.cli.main import app, main

__all__ = ["app", "main"]

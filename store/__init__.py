"""Persistence: `Store` is the one way into a database; the queries and writes live in the modules
next to it, grouped by what they are about (runs, liveness, library, sweeps, curves, analysis,
bundle), each taking the Store first."""
from store.db import Store

__all__ = ["Store"]

"""Deployment switches read from the environment, shared by the pages and the CLI."""
from __future__ import annotations

import os

_TRUE = {"1", "true", "yes", "on"}


def read_only() -> bool:
    """THINKTRACE_READONLY=1 serves the app to others: pages hide run, rename, delete and import.
    Read on every call, so a test or a restarted server sees the current value."""
    return os.environ.get("THINKTRACE_READONLY", "").strip().lower() in _TRUE

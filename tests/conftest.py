"""Shared fixtures. The embedded model is loaded once per test session (it is the slow part)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedded_lm():
    """The real embedded SmolLM2-135M-Instruct through the transformers backend."""
    from reasoning.backends import load_model

    return load_model("smollm2")


@pytest.fixture()
def db_url(tmp_path):
    """A fresh SQLite file per test."""
    return f"sqlite:///{tmp_path / 'thinktrace.db'}"


@pytest.fixture()
def store(db_url):
    """The Store of that file (tests that check URL handling or use several databases make their own)."""
    from store import Store

    return Store(db_url)

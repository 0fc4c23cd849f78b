"""Shared fixtures. The embedded model is loaded once per test session (it is the slow part).

A test session must leave tracked files as it found them: tracked_files' hooks fail the run otherwise.
A browser test that fails saves screenshots of its pages into a temp folder (helpers_browser.new_page)."""
from __future__ import annotations

import os

import pytest
from tracked_files import pytest_sessionfinish, pytest_sessionstart, pytest_terminal_summary  # noqa: F401  (hooks)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on its item (`item.report_call`, ...): fixtures read it at teardown; a failed
    browser test's screenshots are named in its report."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    if report.when == "call" and report.failed and getattr(item, "browser_pages", None):
        from helpers_browser import failure_shots

        saved = failure_shots(item)
        if saved:
            report.sections.append(("browser screenshots", "\n".join(str(p) for p in saved)))
    return report


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

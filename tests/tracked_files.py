"""The test suite must not change tracked files (a test run that rewrote docs/ or a model would show up
in the next commit). tests/conftest.py takes these hooks: at the start of a session a snapshot of every
tracked file that differs from HEAD (git's status letters and a hash of its content), at its end the
same again; any difference is named and fails the run (exit code 1). Comparing before with after, not
with a clean tree, lets the suite run on a tree with uncommitted work. Outside a git checkout (or
without git) the check is skipped, and the summary says why."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BEFORE = pytest.StashKey[dict]()
_VERDICT = pytest.StashKey[tuple]()


def snapshot(root: Path) -> dict[str, str] | None:
    """{path: state} of the tracked files under `root` that differ from HEAD (index or work tree); the
    state is git's two status letters and the SHA-1 of the file's bytes ("-" when it is gone). None when
    `root` is not in a git work tree or git cannot run."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True,
                                text=True, timeout=60)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        status = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=no", "--", "."],
                                cwd=root, capture_output=True, check=True, timeout=120).stdout
        top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True,
                                  text=True, check=True, timeout=60).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None
    state: dict[str, str] = {}
    entries = status.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        letters, path = entry[:2], entry[3:]
        if "R" in letters or "C" in letters:
            i += 1  # a rename or copy is followed by its source path
        file = top / path
        digest = hashlib.sha1(file.read_bytes()).hexdigest() if file.is_file() else "-"
        state[path] = f"{letters} {digest}"
    return state


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The paths whose state differs between two snapshots."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _controller(config) -> bool:
    return not hasattr(config, "workerinput")  # pytest-xdist workers leave the check to the controller


def pytest_sessionstart(session):
    if _controller(session.config):
        session.config.stash[_BEFORE] = snapshot(ROOT)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not _controller(config) or _BEFORE not in config.stash:
        return
    before = config.stash[_BEFORE]
    if before is None:
        config.stash[_VERDICT] = ("skipped", f"{ROOT} is not a git checkout (or git is missing)")
        return
    after = snapshot(ROOT)
    if after is None:
        config.stash[_VERDICT] = ("skipped", "git status failed at the end of the session")
        return
    paths = changed(before, after)
    if paths:
        config.stash[_VERDICT] = ("failed", paths)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    verdict = config.stash.get(_VERDICT, None)
    if verdict is None:
        return
    kind, detail = verdict
    if kind == "skipped":
        terminalreporter.write_line(f"tracked-file check skipped: {detail}", yellow=True)
        return
    terminalreporter.section("tracked files changed by this test session", sep="=", red=True, bold=True)
    for path in detail:
        terminalreporter.write_line(f"  {path}", red=True)
    terminalreporter.write_line("FAILED: a test run must leave tracked files as it found them (write into a temp "
                                "folder instead); see tests/tracked_files.py", red=True, bold=True)

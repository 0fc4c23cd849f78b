"""The check that a test session leaves tracked files as it found them (tests/tracked_files.py): its
snapshots on a scratch git repository, and a whole pytest run that changes a tracked file failing."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tracked_files import changed, snapshot

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
TESTS = Path(__file__).resolve().parent


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    """A git repository with two committed files, one of them changed but not committed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "clean.txt").write_text("clean\n")
    (repo / "dirty.txt").write_text("committed\n")
    (repo / ".gitignore").write_text("*.db\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    (repo / "dirty.txt").write_text("work in progress\n")
    return repo


def test_only_changes_made_after_the_first_snapshot_count(repo):
    before = snapshot(repo)
    assert set(before) == {"dirty.txt"}  # a dirty tree is allowed: the check compares, it does not demand clean
    (repo / "new.txt").write_text("untracked\n")
    (repo / "data.db").write_text("ignored\n")
    assert changed(before, snapshot(repo)) == []
    (repo / "clean.txt").write_text("rewritten by a test\n")
    (repo / "dirty.txt").write_text("work in progress, then a test\n")
    assert changed(before, snapshot(repo)) == ["clean.txt", "dirty.txt"]


def test_a_deleted_or_restored_file(repo):
    before = snapshot(repo)
    (repo / "clean.txt").unlink()
    assert changed(before, snapshot(repo)) == ["clean.txt"]
    (repo / "clean.txt").write_text("clean\n")  # put back as it was: nothing changed
    assert changed(before, snapshot(repo)) == []


def test_outside_a_git_checkout_there_is_no_snapshot(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    assert snapshot(folder) is None


def _session(repo: Path, test_body: str) -> subprocess.CompletedProcess:
    """A pytest run in `repo` with tests/conftest.py's tracked-file hooks and one test."""
    (repo / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport tracked_files\n"
        "tracked_files.ROOT = __import__('pathlib').Path(__file__).parent\n"
        "from tracked_files import pytest_sessionstart, pytest_sessionfinish, pytest_terminal_summary\n")
    (repo / "test_one.py").write_text(f"from pathlib import Path\n\ndef test_one():\n    {test_body}\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"],
                          cwd=repo, capture_output=True, text=True, timeout=120)


def test_a_session_that_changes_a_tracked_file_fails(repo):
    run = _session(repo, "Path('clean.txt').write_text('changed by a test')")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout  # the test itself passed: the session check failed the run
    assert "tracked files changed by this test session" in run.stdout and "clean.txt" in run.stdout


def test_a_session_that_writes_only_untracked_files_passes(repo):
    run = _session(repo, "Path('out.png').write_bytes(b'picture')")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tracked files changed" not in run.stdout


def test_a_session_outside_git_says_the_check_was_skipped(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    run = _session(folder, "Path('x.txt').write_text('x')")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tracked-file check skipped" in run.stdout

"""Start and stop runs from the app: each run is a detached `python -m reasoning run` process.

Why a separate process: model work must survive a page refresh, a closed tab or a restarted app, and
pages must never import torch. The process gets its own session (so Streamlit's Ctrl-C or a dying
app does not take it down), writes its output to a log next to the database, and records its pid on
the Run row, which is what the stop button signals (SIGTERM: the CLI turns it into "interrupted").
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from reasoning.backends import DEFAULT_MODEL
from reasoning.config import knobs
from reasoning.errors import UserError
from reasoning.presets import lookup_preset
from store import Store

ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = ".thinktrace-logs"
LOG_TAIL_BYTES = 64 * 1024  # what last_error reads of a log: its end, however long the log grew
_ID = re.compile(r"[0-9A-Fa-f-]{1,36}")


def check_id(ref: str, what: str = "run") -> str:
    """`ref` if it has the form of a run or sweep id, a UUID (store.models.new_id) or a prefix of one;
    else one UserError. Ids come from links (`?run=`), forms and other processes: checking their form
    before any use means none can name a file (`../../x`, `/etc/x`, here a log path) or a pattern
    (`%` in a prefix query), whatever the code that later uses it does with it."""
    if not isinstance(ref, str) or not _ID.fullmatch(ref):
        shown = ref if isinstance(ref, str) and len(ref) <= 60 else f"{str(ref)[:57]}..."
        raise UserError(f"{shown!r} is not a {what} id (a UUID such as 3f9c01ab-…, or its first characters)")
    return ref


@dataclass
class RunSpec:
    """What the Run page asks for. `knobs` are the knobs it sets (reasoning.config: n, temperature,
    select, ...), each passed as its flag (`--n 8`); the others keep their defaults."""

    strategy: str
    dataset: str
    model: str = DEFAULT_MODEL
    verifier: str | None = None
    limit: int | None = None
    seed: int = 0
    name: str = ""
    knobs: dict = field(default_factory=dict)
    backend: str = "transformers"
    backend_options: dict = field(default_factory=dict)  # base_url, dtype, ...: `--base-url URL`, ...
    concurrency: int | None = None  # problems in flight; None: the backend's default
    preset: str | None = None  # `--preset NAME` (reasoning.presets); knobs equal to its values are not repeated

    def args(self) -> list[str]:
        """The arguments after `python -m reasoning run`, without --db and --run-id."""
        out = ["--strategy", self.strategy, "--dataset", self.dataset]
        if self.limit is not None:
            out += ["--limit", str(self.limit)]
        out += ["--model", self.model]
        if self.backend != "transformers":
            out += ["--backend", self.backend]
        for name, value in self.backend_options.items():
            if value not in (None, ""):
                out += ["--" + name.replace("_", "-"), _arg(value)]
        if self.concurrency is not None:
            out += ["--concurrency", str(self.concurrency)]
        if self.verifier not in (None, "", "none"):
            out += ["--verifier", self.verifier]
        out += ["--seed", str(self.seed)]
        declared = knobs()
        preset = lookup_preset(self.preset).knobs if self.preset else {}
        if self.preset:
            out += ["--preset", self.preset]
        for name, value in self.knobs.items():
            if name in preset and preset[name] == value:
                continue  # the preset sets it
            flag = declared[name].flag
            if isinstance(value, bool):  # typer booleans are --flag / --no-flag
                out.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                out += [flag, _arg(value)]
        if self.name:
            out += ["--name", self.name]
        return out


def _arg(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def display_command(spec: RunSpec, db_url: str, multiline: bool = False) -> str:
    """The shell command that repeats this run from a terminal (one option per line if asked)."""
    args = [*spec.args(), "--db", _db_arg(db_url)]
    if not multiline:
        return shlex.join(["python", "-m", "reasoning", "run", *args])
    lines, i = ["python -m reasoning run"], 0
    while i < len(args):
        takes_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        lines.append(shlex.join(args[i:i + 2] if takes_value else args[i:i + 1]))
        i += 2 if takes_value else 1
    return " \\\n  ".join(lines)


def _db_arg(db_url: str) -> str:
    return Store(db_url).sqlite_file or db_url


def app_folder(db_url: str) -> Path:
    """Where the app keeps files beside a database (LOG_DIR, the Run page's uploads): the database's
    folder, or the temp folder for a server database."""
    path = Store(db_url).sqlite_file
    return Path(path).resolve().parent if path is not None else Path(tempfile.gettempdir())


def log_path(db_url: str, run_id: str) -> Path:
    """`<app folder>/.thinktrace-logs/<run id>.log`. Only names the file: reading a log must create
    nothing (a read-only app writes nothing), so the folder is made where a run is spawned. The id
    is checked first: it becomes part of a path."""
    return app_folder(db_url) / LOG_DIR / f"{check_id(run_id)}.log"


@dataclass
class Launch:
    run_id: str
    pid: int
    log: Path
    argv: list[str]
    started: float


# Processes this app process started, so their exit is noticed (and reaped: an unreaped child stays a
# zombie, and a zombie looks alive to os.kill(pid, 0)).
_children: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()


def _spawn(run_id: str, argv: list[str], db_url: str) -> Launch:
    from thinktrace.settings import read_only

    if read_only():  # the pages hide these buttons; this holds even if one is missed
        raise UserError("this app is read-only (THINKTRACE_READONLY): runs cannot be started or resumed here")
    log = log_path(db_url, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", THINKTRACE_DB=db_url)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with _lock:
        _children[run_id] = proc
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
    return Launch(run_id=run_id, pid=proc.pid, log=log, argv=argv, started=time.time())


def start_run(spec: RunSpec, db_url: str, run_id: str | None = None) -> Launch:
    """Spawn the run; returns at once. The run row appears once the model has loaded."""
    run_id = run_id or str(uuid.uuid4())
    argv = [sys.executable, "-m", "reasoning", "run", *spec.args(), "--db", db_url, "--run-id", run_id]
    return _spawn(run_id, argv, db_url)


def resume_run(run_id: str, db_url: str, base_url: str | None = None) -> Launch:
    """Spawn `resume`. `base_url` is the server the user typed for an `openai` run that has none stored
    (imported runs never bring one: a server address, where the API key goes, never comes from data);
    it goes to `resume --base-url=URL` (one argument: a value starting with `-` stays a value)."""
    argv = [sys.executable, "-m", "reasoning", "resume", check_id(run_id), "--db", db_url]
    if base_url:
        argv.append(f"--base-url={base_url}")
    return _spawn(run_id, argv, db_url)


def stop_run(pid: int | None) -> bool:
    """SIGTERM the worker: it records the run as interrupted (resumable) and exits. False when no
    such process is alive."""
    if not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def child_state(run_id: str) -> tuple[str, int | None]:
    """("running", None), ("exited", returncode) for a process this app started, else ("unknown", None)."""
    with _lock:
        proc = _children.get(run_id)
    if proc is None:
        return "unknown", None
    code = proc.poll()
    return ("running", None) if code is None else ("exited", code)


def last_error(log: Path) -> str | None:
    """The line that explains a failed start: the CLI's `error: ...` line, else the last line. Reads
    the log's last LOG_TAIL_BYTES only: a long run's log can be large, and a page polls this."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else None

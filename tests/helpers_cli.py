"""`python -m reasoning ...` in this process: the real entry point (`thinktrace.cli.main`, with its
exit codes and its one-line errors) without a new interpreter per call, for tests that feed it many
files. An exception that escapes `main` is not caught here: it fails the test, as a traceback would."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from unittest import mock

cli_main = import_module("thinktrace.cli.main")  # the module (the package's `main` is its function)

_registered = False


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(*args: str, db: Path) -> Result:
    global _registered
    if not _registered:  # main() registers the command groups on the shared app: once is enough
        cli_main._register_commands()
        _registered = True
    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)
    env = {**os.environ, "THINKTRACE_DB": str(db)}
    try:
        with mock.patch.object(sys, "argv", ["reasoning", *args]), mock.patch.dict(os.environ, env), \
                mock.patch.object(cli_main, "_register_commands", lambda: None), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli_main.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # main() installs its own
    return Result(code, out.getvalue(), err.getvalue())

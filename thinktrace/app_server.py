"""The app as a server process for tools that drive it (the browser tests, scripts/screenshots.py):
`streamlit run app.py` over one database, up once `/_stcore/health` answers, stopped by process group."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serve(db: Path, port: int, log_file: Path, *, env: dict | None = None, host: str = "127.0.0.1",
          timeout: float = 60) -> Iterator[str]:
    """The app on `db` at http://HOST:PORT, its output in `log_file`; yields the base URL once healthy.
    Raises RuntimeError (with the log's tail) when it does not come up within `timeout` seconds."""
    environ = dict(os.environ, THINKTRACE_DB=str(db), TOKENIZERS_PARALLELISM="false")
    environ.pop("THINKTRACE_READONLY", None)
    environ.update(env or {})
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"],
            cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://{host}:{port}"
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the app did not start: {Path(log_file).read_text()[-2000:]}")
                time.sleep(0.3)
            yield base
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

"""Is a run's worker alive? On its own machine its process says so; elsewhere its heartbeat does.

A running run's worker records its pid and host and writes `heartbeat_at` every HEARTBEAT_S seconds
(store.models). A pid means nothing on another machine sharing the database, so there a run counts
as alive while its heartbeat is younger than STALE_AFTER_S (see docs/scale.md).
"""
from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import update

from store import models as m
from store.db import Store

HOST = socket.gethostname()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runs_here(run: m.Run) -> bool:
    """Whether the run's worker (if any) is a process of this machine (rows from before worker_host: yes)."""
    return run.worker_host in (None, HOST)


def effective_status(run: m.Run, now: datetime | None = None) -> str:
    """A run whose worker died without saying so (kill -9, power cut) reads as interrupted: on the
    worker's machine when its process is gone, elsewhere when its heartbeat is stale."""
    if run.status != m.RUNNING:
        return run.status
    if runs_here(run):
        return m.RUNNING if _pid_alive(run.worker_pid) else m.INTERRUPTED
    beat = m.as_utc(run.heartbeat_at)
    fresh = beat is not None and ((now or m.utcnow()) - beat).total_seconds() < m.STALE_AFTER_S
    return m.RUNNING if fresh else m.INTERRUPTED


def worker_label(run: m.Run) -> str:
    """'process 123' here, 'process 123 on host-b' elsewhere: for messages that say where a run runs."""
    return f"process {run.worker_pid}" + ("" if runs_here(run) else f" on {run.worker_host}")


def claim(store: Store, run_id: str) -> None:
    """This process starts working on the run: running, with our pid, host and a first heartbeat."""
    _set(store, run_id, status=m.RUNNING, worker_pid=os.getpid(), worker_host=HOST, heartbeat_at=m.utcnow(),
         error=None, finished_at=None)


def heartbeat(store: Store, run_id: str) -> None:
    """The worker's sign of life, read by other machines."""
    _set(store, run_id, heartbeat_at=m.utcnow())


def release(store: Store, run_id: str, status: str, error: str | None = None) -> None:
    """The worker stops: the run ends `status` (done, interrupted or failed, with the error text)."""
    values = {"status": status, "worker_pid": None}
    if status == m.DONE:
        values["finished_at"] = m.utcnow()
    if error is not None:
        values["error"] = error
    _set(store, run_id, **values)


def _set(store: Store, run_id: str, **values) -> None:
    with store.session() as session:
        session.execute(update(m.Run).where(m.Run.id == run_id).values(**values))

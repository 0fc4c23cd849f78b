"""Sweeps: the stored plan of an accuracy-vs-budget comparison and the runs made for it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func
from sqlmodel import select

from store import models as m
from store.db import Store
from store.runs import resolve_prefix


def create_sweep(store: Store, name: str, params: dict, sweep_id: str | None = None) -> str:
    """Record a sweep and its plan (`params`, what resuming it needs); returns its id."""
    sweep = m.Sweep(name=name, params=params)
    if sweep_id:
        sweep.id = sweep_id
    with store.session() as session:
        session.add(sweep)
    return sweep.id


def get_sweep(store: Store, sweep_id: str) -> m.Sweep | None:
    with store.session() as session:
        return session.get(m.Sweep, sweep_id)


def sweep_runs(store: Store, sweep_id: str) -> list[m.Run]:
    """The runs made for a sweep so far, oldest first."""
    with store.session() as session:
        return list(session.exec(select(m.Run).where(m.Run.sweep_id == sweep_id).order_by(m.Run.created_at)).all())


def resolve_sweep_id(store: Store, ref: str) -> str:
    """A full sweep id or a unique prefix of one."""
    return resolve_prefix(store, ref, {"sweep": m.Sweep.id}, "sweep", "sweeps")[1]


def resolve_ref(store: Store, ref: str) -> tuple[str, str]:
    """("sweep", id) or ("run", id) for a full id or unique prefix of either."""
    return resolve_prefix(store, ref, {"sweep": m.Sweep.id, "run": m.Run.id}, "run or sweep", "runs and sweeps")


@dataclass(frozen=True)
class SweepSummary:
    id: str
    name: str
    created_at: datetime
    dataset: str
    strategies: list[str]
    budgets: list[int]
    verifier: str | None
    runs: int
    runs_done: int
    model: str = ""  # the model key the sweep ran (lab, lab-s, an HF id)

    def label(self) -> str:
        """What a person recognises a sweep by."""
        return (f"{self.name} · {self.runs_done}/{self.runs} runs done · "
                f"{self.created_at:%Y-%m-%d %H:%M} · {self.id[:8]}")


def list_sweeps(store: Store) -> list[SweepSummary]:
    """Sweeps, newest first, with how many of their runs exist and are done (counted in SQL)."""
    done = func.sum(case((m.Run.status == m.DONE, 1), else_=0))
    query = (select(m.Sweep, func.count(m.Run.id), done)
             .join(m.Run, m.Run.sweep_id == m.Sweep.id, isouter=True)
             .group_by(m.Sweep.id).order_by(m.Sweep.created_at.desc()))
    with store.session() as session:
        rows = session.exec(query).all()
    return [SweepSummary(id=s.id, name=s.name, created_at=s.created_at, dataset=s.params.get("dataset", ""),
                         strategies=list(s.params.get("strategies", [])), budgets=list(s.params.get("budgets", [])),
                         verifier=s.params.get("verifier"), runs=runs or 0, runs_done=int(n_done or 0),
                         model=str(s.params.get("model", "")))
            for s, runs, n_done in rows]

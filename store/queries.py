"""Read models for the CLI and the pages: aggregations happen in SQL, not in Python loops."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Integer, cast, func
from sqlmodel import select

from reasoning.errors import UserError
from store import models as m
from store.db import session_scope


@dataclass
class RunSummary:
    id: str
    name: str
    strategy: str
    n: int | None
    model: str
    verifier: str | None
    dataset: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    problems_done: int
    problems_total: int
    correct: int
    graded: int
    accuracy: float | None
    tokens: int
    model_calls: int
    verifier_calls: int
    wall_seconds: float
    seed: int
    evaluation_only: bool
    error: str | None

    def to_json(self) -> dict:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return d


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


def effective_status(run: m.Run) -> str:
    """A run whose worker died without saying so (kill -9, power cut) reads as interrupted."""
    if run.status == m.RUNNING and not _pid_alive(run.worker_pid):
        return m.INTERRUPTED
    return run.status


def _summaries(session, where=None) -> list[RunSummary]:
    counts = (
        select(
            m.Result.run_id,
            func.count(m.Result.id).label("done"),
            func.sum(cast(m.Result.correct, Integer)).label("correct"),
            func.count(m.Result.correct).label("graded"),
        )
        .group_by(m.Result.run_id)
        .subquery()
    )
    query = select(m.Run, counts.c.done, counts.c.correct, counts.c.graded).join(
        counts, counts.c.run_id == m.Run.id, isouter=True
    )
    if where is not None:
        query = query.where(where)
    out = []
    for run, done, correct, graded in session.exec(query.order_by(m.Run.created_at.desc())).all():
        done, correct, graded = done or 0, correct or 0, graded or 0
        out.append(RunSummary(
            id=run.id, name=run.name, strategy=run.strategy, n=run.params.get("n"),
            model=run.model_name or run.model_id, verifier=run.verifier, dataset=run.dataset,
            status=effective_status(run), created_at=run.created_at, finished_at=run.finished_at,
            problems_done=done, problems_total=run.n_problems, correct=correct, graded=graded,
            accuracy=(correct / graded) if graded else None, tokens=run.tokens, model_calls=run.model_calls,
            verifier_calls=run.verifier_calls, wall_seconds=run.wall_seconds, seed=run.seed,
            evaluation_only=run.evaluation_only, error=run.error,
        ))
    return out


def list_runs(url: str) -> list[RunSummary]:
    with session_scope(url) as session:
        return _summaries(session)


def resolve_run_id(url: str, ref: str) -> str:
    """A full run id or a unique prefix of one (as git does for commits)."""
    with session_scope(url) as session:
        ids = session.exec(select(m.Run.id).where(m.Run.id.startswith(ref))).all() if ref else []
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UserError(f"no run with id {ref!r} in this database")
    raise UserError(f"run id prefix {ref!r} is ambiguous ({len(ids)} runs): give more characters")


def run_summary(url: str, run_id: str) -> RunSummary:
    with session_scope(url) as session:
        rows = _summaries(session, m.Run.id == run_id)
    if not rows:
        raise UserError(f"no run with id {run_id!r} in this database")
    return rows[0]


@dataclass
class ProblemResult:
    position: int
    problem_id: int
    key: str
    question: str
    gold: str | None
    difficulty: int | None
    answer: str | None
    correct: bool | None
    tokens: int
    model_calls: int
    verifier_calls: int
    wall_seconds: float
    node_seq: int | None
    votes: dict


def run_results(url: str, run_id: str) -> list[ProblemResult]:
    """Per-problem results of a run, in the run's problem order (finished problems only)."""
    with session_scope(url) as session:
        rows = session.exec(
            select(m.Result, m.Problem)
            .join(m.Problem, m.Problem.id == m.Result.problem_id)
            .where(m.Result.run_id == run_id)
            .order_by(m.Result.position)
        ).all()
        return [
            ProblemResult(position=r.position, problem_id=p.id, key=p.key, question=p.question, gold=p.answer,
                          difficulty=p.difficulty, answer=r.answer, correct=r.correct, tokens=r.tokens,
                          model_calls=r.model_calls, verifier_calls=r.verifier_calls,
                          wall_seconds=r.wall_seconds, node_seq=r.node_seq, votes=r.votes)
            for r, p in rows
        ]


def tree_nodes(url: str, run_id: str, problem_id: int) -> list[m.Node]:
    """Every node of one problem's tree, in creation order (one query)."""
    with session_scope(url) as session:
        return list(session.exec(
            select(m.Node).where(m.Node.run_id == run_id, m.Node.problem_id == problem_id).order_by(m.Node.seq)
        ).all())

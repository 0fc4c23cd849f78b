"""What the Budget page's test-time training section reads: which of some runs are ttt runs, the
problems they all finished, each one's per-problem outcome, and each one's augmented predictions in
the order they were made (the root's children that carry an augmentation, by seq), so a vote over
the first k of them can be recomputed for every k (thinktrace/ttt.py)."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from sqlmodel import select

from store import models as m
from store.db import Store

TTT = "ttt"


def ttt_runs(store: Store, run_ids: Sequence[str]) -> list[m.Run]:
    """The ttt runs among `run_ids`, in that order."""
    if not run_ids:
        return []
    with store.session() as session:
        runs = {r.id: r for r in session.exec(select(m.Run).where(m.Run.id.in_(list(run_ids)),
                                                                  m.Run.strategy == TTT)).all()}
    return [runs[rid] for rid in run_ids if rid in runs]


def shared_outcomes(store: Store, run_ids: Sequence[str]) -> dict[str, dict[int, bool | None]]:
    """run id -> {problem id: correct} over the problems every one of the runs finished."""
    with store.session() as session:
        rows = session.exec(select(m.Result.run_id, m.Result.problem_id, m.Result.correct)
                            .where(m.Result.run_id.in_(list(run_ids)))).all()
    by_run: dict[str, dict[int, bool | None]] = {rid: {} for rid in run_ids}
    for rid, pid, correct in rows:
        by_run[rid][pid] = correct
    shared = set.intersection(*(set(v) for v in by_run.values())) if by_run else set()
    return {rid: {pid: c for pid, c in outcomes.items() if pid in shared} for rid, outcomes in by_run.items()}


def predictions(store: Store, run_id: str, problem_ids: Sequence[int]) -> dict[int, list[tuple[str | None, bool | None]]]:
    """problem id -> the run's augmented predictions, in the order they were made: (mapped-back
    answer, right?) each."""
    with store.session() as session:
        rows = session.exec(
            select(m.Node.problem_id, m.Node.answer, m.Node.correct, m.Node.meta)
            .where(m.Node.run_id == run_id, m.Node.problem_id.in_(list(problem_ids)), m.Node.parent_seq.is_not(None))
            .order_by(m.Node.problem_id, m.Node.seq)
        ).all()
    out: dict[int, list] = defaultdict(list)
    for pid, answer, correct, meta in rows:
        if "augmentation_name" in (meta or {}):
            out[pid].append((answer, correct))
    return dict(out)

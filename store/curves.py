"""What budget curves are computed from: the problems every compared run finished, each sampling
run's final samples, and each other run's per-problem outcome and spend (thinktrace/curves.py turns
them into points; the HTML report reads the same samples)."""
from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Sequence

from sqlmodel import select

from reasoning.answers import answer_keys
from reasoning.estimators import ProblemSamples, Sample
from store import models as m
from store.db import Store


def common_problems(store: Store, run_ids: Sequence[str]) -> list[int]:
    """Problems with a Result in every run, in the first run's order."""
    with store.session() as session:
        done = None
        for run_id in run_ids:
            ids = set(session.exec(select(m.Result.problem_id).where(m.Result.run_id == run_id)).all())
            done = ids if done is None else done & ids
        order = session.exec(select(m.RunProblem.problem_id).where(m.RunProblem.run_id == run_ids[0])
                             .order_by(m.RunProblem.position)).all()
    return [pid for pid in order if pid in done]


def problems_by_id(store: Store, problem_ids: Sequence[int]) -> dict[int, m.Problem]:
    with store.session() as session:
        return {p.id: p for p in session.exec(select(m.Problem).where(m.Problem.id.in_(list(problem_ids)))).all()}


def run_samples(store: Store, run_id: str, problem_ids: Sequence[int] | None = None) -> list[ProblemSamples]:
    """Per problem (default: every finished one, in the run's order), the run's final samples: the
    childless non-root nodes in creation order, a leaf's tokens being those of its whole chain.
    Equivalent answers share one key (reasoning.answers.answer_keys), so every reader of a run's
    samples (the budget curves, the HTML report) votes the same way. ProblemSamples.key is the
    problem's database id as text: unique across datasets."""
    with store.session() as session:
        if problem_ids is None:
            problem_ids = session.exec(select(m.Result.problem_id).where(m.Result.run_id == run_id)
                                       .order_by(m.Result.position)).all()
        rows = session.exec(
            select(m.Node.problem_id, m.Node.seq, m.Node.parent_seq, m.Node.tokens, m.Node.answer,
                   m.Node.correct, m.Node.path_score)
            .where(m.Node.run_id == run_id).order_by(m.Node.problem_id, m.Node.seq)
        ).all()
        difficulty = dict(session.exec(select(m.Problem.id, m.Problem.difficulty)
                                       .where(m.Problem.id.in_(list(problem_ids)))).all())
    by_problem = defaultdict(list)
    for row in rows:
        by_problem[row[0]].append(row)
    out = []
    for pid in problem_ids:
        nodes = by_problem[pid]
        chain_tokens: dict[int, int] = {}
        parents = set()
        for _, seq, parent, tokens, *_rest in nodes:  # parents precede children in seq order
            chain_tokens[seq] = tokens + (chain_tokens.get(parent, 0) if parent is not None else 0)
            parents.add(parent)
        leaves = [n for n in nodes if n[2] is not None and n[1] not in parents]
        keys = answer_keys([n[4] for n in leaves], [n[5] for n in leaves])
        samples = [Sample(answer=key, correct=n[5], score=n[6], tokens=chain_tokens[n[1]])
                   for n, key in zip(leaves, keys)]
        out.append(ProblemSamples(str(pid), samples, difficulty=difficulty.get(pid)))
    return out


class ResultRow(NamedTuple):
    """One finished problem of a run: its outcome, its generated tokens, the strategy's and runner's
    notes (an adaptive strategy's `samples` spent and `stop_reason`, the `prompt_tokens` read) and its
    wall-clock seconds."""

    correct: bool | None
    tokens: int
    meta: dict
    wall_seconds: float = 0.0


def problem_results(store: Store, run_id: str, problem_ids: Sequence[int] | None = None) -> dict[int, ResultRow]:
    """problem id -> ResultRow for the problems the run finished (of `problem_ids`, when given)."""
    with store.session() as session:
        rows = session.exec(select(m.Result.problem_id, m.Result.correct, m.Result.tokens, m.Result.meta,
                                   m.Result.wall_seconds).where(m.Result.run_id == run_id)).all()
    wanted = None if problem_ids is None else set(problem_ids)
    return {pid: ResultRow(correct, tokens, meta or {}, seconds or 0.0) for pid, correct, tokens, meta, seconds in rows
            if wanted is None or pid in wanted}

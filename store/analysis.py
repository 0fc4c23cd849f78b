"""Reads that put several runs side by side: every final path with its verifier score and the truth
(the Verifier page), and per-problem outcomes and like-for-like summaries (the Compare page)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, cast, func
from sqlmodel import select

from store import models as m
from store.db import Store


@dataclass
class FinalPath:
    """A path that ended with an answer: its leaf, the verifier's path score and the truth."""

    run_id: str
    problem_id: int
    position: int
    seq: int
    depth: int
    answer: str | None
    correct: bool | None
    score: float | None
    path_score: float | None
    chosen: bool
    question: str
    gold: str | None


def final_paths(store: Store, run_ids: list[str]) -> list[FinalPath]:
    """Leaves that end a path (terminal, or the chosen leaf) of the given runs; pruned nodes and
    inner nodes are left out in SQL (anti-join on children)."""
    if not run_ids:
        return []
    child = m.Node.__table__.alias("child")
    has_child = (
        select(child.c.id)
        .where(child.c.run_id == m.Node.run_id, child.c.problem_id == m.Node.problem_id,
               child.c.parent_seq == m.Node.seq)
        .exists()
    )
    query = (
        select(m.Node.run_id, m.Node.problem_id, m.RunProblem.position, m.Node.seq, m.Node.depth, m.Node.answer,
               m.Node.correct, m.Node.score, m.Node.path_score, m.Node.status, m.Problem.question, m.Problem.answer)
        .join(m.Problem, m.Problem.id == m.Node.problem_id)
        .join(m.RunProblem, (m.RunProblem.run_id == m.Node.run_id) & (m.RunProblem.problem_id == m.Node.problem_id))
        .where(m.Node.run_id.in_(run_ids), m.Node.depth > 0, m.Node.status.in_(("terminal", "selected")), ~has_child)
        .order_by(m.Node.run_id, m.RunProblem.position, m.Node.seq)
    )
    with store.session() as session:
        return [FinalPath(run_id=r, problem_id=pid, position=pos, seq=seq, depth=depth, answer=ans, correct=corr,
                          score=score, path_score=ps, chosen=status == "selected", question=q, gold=gold)
                for r, pid, pos, seq, depth, ans, corr, score, ps, status, q, gold in session.exec(query).all()]


def scored_steps(store: Store, run_ids: list[str]) -> list[tuple[str, int, int, int | None, float | None]]:
    """(run_id, problem_id, seq, parent_seq, score) of every node of the runs: enough to walk each
    final path back to the root and read its score trajectory."""
    if not run_ids:
        return []
    with store.session() as session:
        return list(session.exec(
            select(m.Node.run_id, m.Node.problem_id, m.Node.seq, m.Node.parent_seq, m.Node.score)
            .where(m.Node.run_id.in_(run_ids))
        ).all())


@dataclass
class Outcome:
    run_id: str
    problem_id: int
    position: int
    key: str
    question: str
    gold: str | None
    answer: str | None
    correct: bool | None
    tokens: int
    wall_seconds: float


def outcomes(store: Store, run_ids: list[str]) -> list[Outcome]:
    """Per-problem results of several runs (the Compare page's matrix)."""
    if not run_ids:
        return []
    with store.session() as session:
        rows = session.exec(
            select(m.Result.run_id, m.Result.problem_id, m.Result.position, m.Problem.key, m.Problem.question,
                   m.Problem.answer, m.Result.answer, m.Result.correct, m.Result.tokens, m.Result.wall_seconds)
            .join(m.Problem, m.Problem.id == m.Result.problem_id)
            .where(m.Result.run_id.in_(run_ids))
            .order_by(m.Result.position)
        ).all()
    return [Outcome(*row) for row in rows]


@dataclass
class SharedSummary:
    run_id: str
    problems: int
    correct: int
    graded: int
    tokens_per_problem: float
    seconds_per_problem: float


def shared_summary(store: Store, run_ids: list[str]) -> list[SharedSummary]:
    """Accuracy, tokens and time of each run over the problems all the runs finished, so the
    numbers compare like with like (aggregated in SQL)."""
    if not run_ids:
        return []
    shared = (
        select(m.Result.problem_id)
        .where(m.Result.run_id.in_(run_ids))
        .group_by(m.Result.problem_id)
        .having(func.count(func.distinct(m.Result.run_id)) == len(set(run_ids)))
    )
    query = (
        select(m.Result.run_id, func.count(m.Result.id), func.sum(cast(m.Result.correct, Integer)),
               func.count(m.Result.correct), func.avg(m.Result.tokens), func.avg(m.Result.wall_seconds))
        .where(m.Result.run_id.in_(run_ids), m.Result.problem_id.in_(shared))
        .group_by(m.Result.run_id)
    )
    with store.session() as session:
        rows = {r[0]: r for r in session.exec(query).all()}
    return [SharedSummary(run_id=rid, problems=rows[rid][1], correct=rows[rid][2] or 0, graded=rows[rid][3],
                          tokens_per_problem=float(rows[rid][4] or 0), seconds_per_problem=float(rows[rid][5] or 0))
            if rid in rows else SharedSummary(rid, 0, 0, 0, 0.0, 0.0) for rid in run_ids]

"""Runs and their nodes: creating a run, streaming its nodes and results while it works, and reading
it back (summaries, per-problem results, trees). Aggregations happen in SQL, not in Python loops.

A problem counts as done only when its Result is committed, in the same transaction as its last
nodes (NodeWriter.finish); the nodes of a problem without a Result are a crash's leftovers, which
discard_partial deletes before a resume redoes the problem.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Integer, cast, delete, func, insert, update
from sqlmodel import select

from reasoning.errors import UserError
from reasoning.types import Node, Problem
from store import models as m
from store.bundle_schema import check_problem
from store.db import Store
from store.liveness import effective_status

# ---------------------------------------------------------------------------------------------
# Writing a run


def create_run(store: Store, run: m.Run, problems: list[Problem]) -> str:
    """Record the run and its problem list in one transaction (problems: `problem_ids`)."""
    with store.session() as session:
        session.add(run)
        ids = problem_ids(session, problems)
        session.flush()
        session.add_all(m.RunProblem(run_id=run.id, position=position, problem_id=ids[(problem.dataset, problem.key)])
                        for position, problem in enumerate(problems))
        return run.id


def problem_ids(session, problems: list[Problem]) -> dict[tuple[str, str], int]:
    """The database id of each problem, by (dataset, key), adding the new ones (one query for the
    known ones). Problems are shared between runs, so a problem is its content too: one stored under
    the same (dataset, key) with another question or gold answer is refused, since mixing them would
    grade one run's answers against another's question. A stored one no run uses any more is
    corrected instead, so deleting the runs that brought a wrong copy is the way out."""
    for problem in problems:
        check_problem(problem)  # the bundle's rules, so every stored problem can travel
    datasets = {problem.dataset for problem in problems}
    query = select(m.Problem).where(m.Problem.dataset.in_(datasets))
    if len(problems) <= 500:  # a few (a server's requests): by key, not the whole dataset, which only grows
        query = query.where(m.Problem.key.in_({problem.key for problem in problems}))
    known = {(row.dataset, row.key): row for row in session.exec(query).all()}
    for problem in problems:
        row = known.get((problem.dataset, problem.key))
        if row is None:
            row = known[(problem.dataset, problem.key)] = m.Problem(dataset=problem.dataset, key=problem.key)
        elif (row.question, row.answer) == (problem.question, problem.answer):
            continue
        elif row.id is not None:
            user = session.exec(select(m.RunProblem.run_id).where(m.RunProblem.problem_id == row.id).limit(1)).first()
            if user is not None:
                raise UserError(f"problem {problem.key!r} of dataset {problem.dataset!r} is stored here with "
                                f"another question or answer (used by run {user[:8]}): refusing to mix them "
                                f"(delete the runs that use it to replace it)")
        row.question, row.answer = problem.question, problem.answer
        row.difficulty, row.meta = problem.difficulty, problem.meta
        session.add(row)
    session.flush()
    return {ref: row.id for ref, row in known.items()}


def add_problems(store: Store, run_id: str, problems: list[Problem]) -> list[tuple[int, m.Problem]]:
    """Append problems to a run that goes on growing (a server's run gets one per request), in one
    transaction: their rows (`problem_ids`), their places after the run's last one and the run's new
    problem count. Returns (position, problem row) of each, in order, ready for the runner."""
    if not problems:
        return []
    with store.session() as session:
        ids = problem_ids(session, problems)
        # The count first: on PostgreSQL the update locks the run's row, so two writers never take the same places.
        total = session.execute(update(m.Run).where(m.Run.id == run_id)
                                .values(n_problems=m.Run.n_problems + len(problems))
                                .returning(m.Run.n_problems)).scalar_one()
        start = total - len(problems)
        rows = [session.get(m.Problem, ids[(p.dataset, p.key)]) for p in problems]
        session.add_all(m.RunProblem(run_id=run_id, position=start + i, problem_id=row.id) for i, row in enumerate(rows))
        return [(start + i, row) for i, row in enumerate(rows)]


def runs_of_dataset(store: Store, dataset: str, limit: int = 1000) -> list[m.Run]:
    """The newest runs over one dataset, newest first."""
    query = select(m.Run).where(m.Run.dataset == dataset).order_by(m.Run.created_at.desc()).limit(limit)
    with store.session() as session:
        return list(session.exec(query).all())


def get_run(store: Store, run_id: str) -> m.Run | None:
    """The run's row (settings, counters, worker), or None."""
    with store.session() as session:
        return session.get(m.Run, run_id)


def get_runs(store: Store, run_ids: list[str]) -> list[m.Run]:
    """The rows of these runs that exist, in no particular order."""
    if not run_ids:
        return []
    with store.session() as session:
        return list(session.exec(select(m.Run).where(m.Run.id.in_(list(run_ids)))).all())


def discard_partial(store: Store, run_id: str) -> None:
    """Delete nodes of problems that have no committed Result (a crash mid-problem)."""
    with store.session() as session:
        done = select(m.Result.problem_id).where(m.Result.run_id == run_id)
        session.execute(delete(m.Node).where(m.Node.run_id == run_id, m.Node.problem_id.not_in(done)))


def pending_problems(store: Store, run_id: str) -> list[tuple[int, m.Problem]]:
    """(position, problem) of the run's problems without a Result, in order."""
    with store.session() as session:
        done = select(m.Result.problem_id).where(m.Result.run_id == run_id)
        rows = session.exec(
            select(m.RunProblem.position, m.Problem)
            .join(m.Problem, m.Problem.id == m.RunProblem.problem_id)
            .where(m.RunProblem.run_id == run_id, m.RunProblem.problem_id.not_in(done))
            .order_by(m.RunProblem.position)
        ).all()
        return [(pos, prob) for pos, prob in rows]


_NODE_FIELDS = ("seq", "depth", "text", "tokens", "logprob", "score", "path_score", "status",
                "finish_reason", "answer", "correct", "iteration", "meta")


class NodeWriter:
    """Receives every node event of one problem; writes them in small batches (so the app sees the
    tree grow) and finally, with the problem's Result, in one transaction (`finish`)."""

    def __init__(self, store: Store, run_id: str, problem_id: int, every_s: float = 0.5):
        self.store, self.run_id, self.problem_id, self.every_s = store, run_id, problem_id, every_s
        self.pending: dict[int, Node] = {}
        self.ids: dict[int, int] = {}
        self.last_flush = time.monotonic()

    def __call__(self, node: Node) -> None:
        self.pending[node.seq] = node
        if time.monotonic() - self.last_flush > self.every_s:
            with self.store.session() as session:
                self._flush(session)

    def finish(self, result: m.Result) -> None:
        """The problem is done: its last nodes, its Result and the run's totals commit together."""
        with self.store.session() as session:
            self._flush(session)
            session.add(result)
            session.execute(update(m.Run).where(m.Run.id == self.run_id).values(
                tokens=m.Run.tokens + result.tokens, model_calls=m.Run.model_calls + result.model_calls,
                verifier_calls=m.Run.verifier_calls + result.verifier_calls,
                wall_seconds=m.Run.wall_seconds + result.wall_seconds))

    def _flush(self, session) -> None:
        """Insert new nodes, update the ones written before (a node's status or score changes)."""
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        rows = [{**{f: getattr(n, f) for f in _NODE_FIELDS}, "parent_seq": n.parent} for n in self.pending.values()]
        new = [r for r in rows if r["seq"] not in self.ids]
        old = [{**r, "id": self.ids[r["seq"]]} for r in rows if r["seq"] in self.ids]
        if new:
            stmt = insert(m.Node).returning(m.Node.id, m.Node.seq, sort_by_parameter_order=True)
            result = session.execute(stmt, [{**r, "run_id": self.run_id, "problem_id": self.problem_id} for r in new])
            self.ids.update({seq: id_ for id_, seq in result.all()})
        if old:
            session.execute(update(m.Node), old)
        self.pending.clear()


# ---------------------------------------------------------------------------------------------
# Reading runs back


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


def _result_counts():
    """Per run: problems done, right, graded (one grouped subquery, joined to runs)."""
    return (
        select(
            m.Result.run_id,
            func.count(m.Result.id).label("done"),
            func.sum(cast(m.Result.correct, Integer)).label("correct"),
            func.count(m.Result.correct).label("graded"),
        )
        .group_by(m.Result.run_id)
        .subquery()
    )


def _runs_with_counts(counts):
    return select(m.Run, counts.c.done, counts.c.correct, counts.c.graded).join(
        counts, counts.c.run_id == m.Run.id, isouter=True
    )


def _summary(run: m.Run, done, correct, graded) -> RunSummary:
    done, correct, graded = done or 0, correct or 0, graded or 0
    return RunSummary(
        id=run.id, name=run.name, strategy=run.strategy, n=run.params.get("n"),
        model=run.model_name or run.model_id, verifier=run.verifier, dataset=run.dataset,
        status=effective_status(run), created_at=run.created_at, finished_at=run.finished_at,
        problems_done=done, problems_total=run.n_problems, correct=correct, graded=graded,
        accuracy=(correct / graded) if graded else None, tokens=run.tokens, model_calls=run.model_calls,
        verifier_calls=run.verifier_calls, wall_seconds=run.wall_seconds, seed=run.seed,
        evaluation_only=run.evaluation_only, error=run.error,
    )


def _summaries(session, where=None) -> list[RunSummary]:
    query = _runs_with_counts(_result_counts())
    if where is not None:
        query = query.where(where)
    return [_summary(*row) for row in session.exec(query.order_by(m.Run.created_at.desc())).all()]


def list_runs(store: Store) -> list[RunSummary]:
    with store.session() as session:
        return _summaries(session)


def resolve_prefix(store: Store, ref: str, columns: dict, what: str, plural: str) -> tuple[str, str]:
    """(kind, id) of the one row whose id is `ref` or starts with it (as git does for commits), among
    the id `columns` by kind; matched literally: `%` and `_` are characters, not LIKE wildcards (`show %`
    matched every run). `what` / `plural` name the kinds in the messages."""
    with store.session() as session:
        matches = [(kind, id_) for kind, column in columns.items()
                   for id_ in (session.exec(select(column).where(column.startswith(ref, autoescape=True))).all()
                               if ref else [])]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"no {what} with id {ref!r} in this database")
    prefix = f"{what} id prefix" if len(columns) == 1 else "id prefix"
    raise UserError(f"{prefix} {ref!r} is ambiguous ({len(matches)} {plural}): give more characters")


def resolve_run_id(store: Store, ref: str) -> str:
    """A full run id or a unique prefix of one."""
    return resolve_prefix(store, ref, {"run": m.Run.id}, "run", "runs")[1]


def run_summary(store: Store, run_id: str) -> RunSummary:
    with store.session() as session:
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


def run_results(store: Store, run_id: str) -> list[ProblemResult]:
    """Per-problem results of a run, in the run's problem order (finished problems only)."""
    with store.session() as session:
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


def tree_nodes(store: Store, run_id: str, problem_id: int) -> list[m.Node]:
    """Every node of one problem's tree, in creation order (one query)."""
    with store.session() as session:
        return list(session.exec(
            select(m.Node).where(m.Node.run_id == run_id, m.Node.problem_id == problem_id).order_by(m.Node.seq)
        ).all())


@dataclass
class RunProblemRow:
    """One problem of a run, finished or not (the problem picker of the Tree and Run pages)."""

    position: int
    problem_id: int
    key: str
    question: str
    gold: str | None
    difficulty: int | None
    done: bool
    correct: bool | None
    answer: str | None
    node_seq: int | None
    tokens: int | None  # generated for the problem (None: not finished)
    nodes: int
    meta: dict = field(default_factory=dict)  # the problem's (a task's demonstrations and test input)
    result_meta: dict = field(default_factory=dict)  # the strategy's notes on its result (ttt: its attempts)


def run_problems(store: Store, run_id: str) -> list[RunProblemRow]:
    """Every problem a run was asked to solve, in order, with its result and node count (one query)."""
    node_counts = (
        select(m.Node.problem_id, func.count(m.Node.id).label("nodes"))
        .where(m.Node.run_id == run_id)
        .group_by(m.Node.problem_id)
        .subquery()
    )
    query = (
        select(m.RunProblem.position, m.Problem, m.Result.id, m.Result.correct, m.Result.answer,
               m.Result.node_seq, m.Result.tokens, node_counts.c.nodes, m.Result.meta)
        .join(m.Problem, m.Problem.id == m.RunProblem.problem_id)
        .join(m.Result, (m.Result.run_id == m.RunProblem.run_id) & (m.Result.problem_id == m.RunProblem.problem_id),
              isouter=True)
        .join(node_counts, node_counts.c.problem_id == m.RunProblem.problem_id, isouter=True)
        .where(m.RunProblem.run_id == run_id)
        .order_by(m.RunProblem.position)
    )
    with store.session() as session:
        return [
            RunProblemRow(position=pos, problem_id=p.id, key=p.key, question=p.question, gold=p.answer,
                          difficulty=p.difficulty, done=rid is not None, correct=correct, answer=answer,
                          node_seq=node_seq, tokens=tokens, nodes=nodes or 0, meta=p.meta or {},
                          result_meta=result_meta or {})
            for pos, p, rid, correct, answer, node_seq, tokens, nodes, result_meta in session.exec(query).all()
        ]


def current_problem(store: Store, run_id: str) -> int | None:
    """The problem the run touched last (its newest node): the tree that is growing right now."""
    with store.session() as session:
        return session.exec(
            select(m.Node.problem_id).where(m.Node.run_id == run_id).order_by(m.Node.id.desc()).limit(1)
        ).first()

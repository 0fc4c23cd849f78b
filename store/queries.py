"""Read models for the CLI and the pages: aggregations happen in SQL, not in Python loops."""
from __future__ import annotations

import json
import os
import socket
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


HOST = socket.gethostname()


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


# ---------------------------------------------------------------------------------------------
# Library: many runs, filtered, sorted and paginated in SQL


@dataclass
class LibraryFilter:
    """What the Library page (or a script) narrows the run list by; empty means no constraint.
    `status` filters the stored status (a run whose worker died still reads `running` here)."""

    text: str = ""  # substring of name, id, model, strategy or dataset (case-insensitive)
    strategies: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tag: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None  # exclusive


LIBRARY_SORTS = ("created_at", "name", "accuracy", "tokens", "wall_seconds")


def library_runs(url: str, filters: LibraryFilter | None = None, sort: str = "created_at",
                 descending: bool = True, offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
    """One page of runs and the number of runs matching the filters (for pagination). Accuracy is
    aggregated and sorted in SQL, so thousands of runs cost one query per page."""
    from sqlalchemy import String, and_, or_

    if sort not in LIBRARY_SORTS:
        raise UserError(f"unknown sort {sort!r}: choose one of {', '.join(LIBRARY_SORTS)}")
    f = filters or LibraryFilter()
    conditions = []
    if f.text.strip():
        like = f"%{f.text.strip().lower()}%"
        conditions.append(or_(*[func.lower(col).like(like) for col in
                                (m.Run.name, m.Run.id, m.Run.model_name, m.Run.model_id, m.Run.strategy, m.Run.dataset)]))
    for column, values in ((m.Run.strategy, f.strategies), (m.Run.dataset, f.datasets), (m.Run.status, f.statuses)):
        if values:
            conditions.append(column.in_(values))
    if f.models:
        conditions.append(or_(m.Run.model_name.in_(f.models), m.Run.model_id.in_(f.models)))
    if f.tag.strip():
        # JSON lists serialise each tag as a quoted string: match the quoted form exactly.
        conditions.append(cast(m.Run.tags, String).like(f"%{json.dumps(f.tag.strip())}%"))
    if f.created_from is not None:
        conditions.append(m.Run.created_at >= f.created_from)
    if f.created_to is not None:
        conditions.append(m.Run.created_at < f.created_to)
    where = and_(*conditions) if conditions else None
    with session_scope(url) as session:
        total_query = select(func.count()).select_from(m.Run)
        if where is not None:
            total_query = total_query.where(where)
        total = session.exec(total_query).one()
        rows = _library_page(session, where, sort, descending, offset, limit)
    return rows, int(total)


def _library_page(session, where, sort: str, descending: bool, offset: int, limit: int) -> list[RunSummary]:
    from sqlalchemy import Float

    counts = _result_counts()
    accuracy = cast(counts.c.correct, Float) / func.nullif(counts.c.graded, 0)
    key = {"created_at": m.Run.created_at, "name": func.lower(m.Run.name), "accuracy": accuracy,
           "tokens": m.Run.tokens, "wall_seconds": m.Run.wall_seconds}[sort]
    order = (key.desc() if descending else key.asc()).nulls_last()
    query = _runs_with_counts(counts)
    if where is not None:
        query = query.where(where)
    query = query.order_by(order, m.Run.created_at.desc(), m.Run.id).offset(max(0, offset)).limit(max(1, limit))
    return [_summary(*row) for row in session.exec(query).all()]


def library_facets(url: str) -> dict[str, list[str]]:
    """The distinct strategies, models, datasets and tags present, for filter widgets."""
    with session_scope(url) as session:
        def distinct(column):
            return sorted(v for v in session.exec(select(column).distinct()).all() if v)

        tags = sorted({t for row in session.exec(select(m.Run.tags)).all() for t in (row or [])})
        models = sorted({name or mid for name, mid in session.exec(
            select(m.Run.model_name, m.Run.model_id).distinct()).all() if name or mid})
        return {"strategies": distinct(m.Run.strategy), "models": models, "datasets": distinct(m.Run.dataset),
                "tags": tags}


def update_run_info(url: str, run_id: str, name: str | None = None, tags: list[str] | None = None,
                    notes: str | None = None) -> None:
    """Rename a run, replace its tags or notes; None leaves a field as it is."""
    with session_scope(url) as session:
        run = session.get(m.Run, run_id)
        if run is None:
            raise UserError(f"no run with id {run_id!r} in this database")
        if name is not None:
            run.name = name.strip()
        if tags is not None:
            run.tags = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if notes is not None:
            run.notes = notes
        session.add(run)


def delete_runs(url: str, run_ids: list[str]) -> int:
    """Delete runs with their nodes, results and problem lists, in one transaction; problems stay
    (other runs may share them). Returns how many runs were deleted."""
    from sqlalchemy import delete

    if not run_ids:
        return 0
    with session_scope(url) as session:
        for table in (m.Node, m.Result, m.RunProblem):
            session.execute(delete(table).where(table.run_id.in_(run_ids)))
        return session.execute(delete(m.Run).where(m.Run.id.in_(run_ids))).rowcount


def run_samples(url: str, run_id: str) -> list:
    """Each finished problem's final samples (leaf nodes: answer, correctness, path score, tokens
    along the path) as estimators.ProblemSamples, in the run's problem order: the input of budget
    curves for runs of N parallel chains."""
    from reasoning.answers import canonical
    from reasoning.estimators import ProblemSamples, Sample

    with session_scope(url) as session:
        rows = session.exec(
            select(m.Node.problem_id, m.Node.seq, m.Node.parent_seq, m.Node.tokens, m.Node.answer,
                   m.Node.correct, m.Node.path_score)
            .join(m.Result, (m.Result.run_id == m.Node.run_id) & (m.Result.problem_id == m.Node.problem_id))
            .where(m.Node.run_id == run_id).order_by(m.Result.position, m.Node.seq)
        ).all()
        meta = {pid: (key, difficulty) for pid, key, difficulty in session.exec(
            select(m.Problem.id, m.Problem.key, m.Problem.difficulty)
            .join(m.Result, m.Result.problem_id == m.Problem.id).where(m.Result.run_id == run_id)).all()}
    by_problem: dict[int, list] = {}
    for row in rows:
        by_problem.setdefault(row[0], []).append(row)
    out = []
    for pid, nodes in by_problem.items():
        parents = {n[2] for n in nodes if n[2] is not None}
        tokens = {}
        for _, seq, parent, tok, *_ in nodes:  # seq order: a parent comes before its children
            tokens[seq] = tok + (tokens.get(parent, 0) if parent is not None else 0)
        samples = [Sample(answer=canonical(answer), correct=correct, score=score, tokens=tokens[seq])
                   for _, seq, parent, _, answer, correct, score in nodes if parent is not None and seq not in parents]
        key, difficulty = meta[pid]
        out.append(ProblemSamples(key=key, samples=samples, difficulty=difficulty))
    return out


# --- Read models for the app's pages (Tree, Run, Verifier, Compare) ---------------------------


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
    nodes: int


def run_problems(url: str, run_id: str) -> list[RunProblemRow]:
    """Every problem a run was asked to solve, in order, with its result and node count (one query)."""
    node_counts = (
        select(m.Node.problem_id, func.count(m.Node.id).label("nodes"))
        .where(m.Node.run_id == run_id)
        .group_by(m.Node.problem_id)
        .subquery()
    )
    query = (
        select(m.RunProblem.position, m.Problem, m.Result.id, m.Result.correct, m.Result.answer,
               m.Result.node_seq, node_counts.c.nodes)
        .join(m.Problem, m.Problem.id == m.RunProblem.problem_id)
        .join(m.Result, (m.Result.run_id == m.RunProblem.run_id) & (m.Result.problem_id == m.RunProblem.problem_id),
              isouter=True)
        .join(node_counts, node_counts.c.problem_id == m.RunProblem.problem_id, isouter=True)
        .where(m.RunProblem.run_id == run_id)
        .order_by(m.RunProblem.position)
    )
    with session_scope(url) as session:
        return [
            RunProblemRow(position=pos, problem_id=p.id, key=p.key, question=p.question, gold=p.answer,
                          difficulty=p.difficulty, done=rid is not None, correct=correct, answer=answer,
                          node_seq=node_seq, nodes=nodes or 0)
            for pos, p, rid, correct, answer, node_seq, nodes in session.exec(query).all()
        ]


def current_problem(url: str, run_id: str) -> int | None:
    """The problem the run touched last (its newest node): the tree that is growing right now."""
    with session_scope(url) as session:
        return session.exec(
            select(m.Node.problem_id).where(m.Node.run_id == run_id).order_by(m.Node.id.desc()).limit(1)
        ).first()


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


def final_paths(url: str, run_ids: list[str]) -> list[FinalPath]:
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
    with session_scope(url) as session:
        return [FinalPath(run_id=r, problem_id=pid, position=pos, seq=seq, depth=depth, answer=ans, correct=corr,
                          score=score, path_score=ps, chosen=status == "selected", question=q, gold=gold)
                for r, pid, pos, seq, depth, ans, corr, score, ps, status, q, gold in session.exec(query).all()]


def scored_steps(url: str, run_ids: list[str]) -> list[tuple[str, int, int, int | None, float | None]]:
    """(run_id, problem_id, seq, parent_seq, score) of every node of the runs: enough to walk each
    final path back to the root and read its score trajectory."""
    if not run_ids:
        return []
    with session_scope(url) as session:
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


def outcomes(url: str, run_ids: list[str]) -> list[Outcome]:
    """Per-problem results of several runs (the Compare page's matrix)."""
    if not run_ids:
        return []
    with session_scope(url) as session:
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


def shared_summary(url: str, run_ids: list[str]) -> list[SharedSummary]:
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
    with session_scope(url) as session:
        rows = {r[0]: r for r in session.exec(query).all()}
    return [SharedSummary(run_id=rid, problems=rows[rid][1], correct=rows[rid][2] or 0, graded=rows[rid][3],
                          tokens_per_problem=float(rows[rid][4] or 0), seconds_per_problem=float(rows[rid][5] or 0))
            if rid in rows else SharedSummary(rid, 0, 0, 0, 0.0, 0.0) for rid in run_ids]

"""The Library: many runs, filtered, sorted and paginated in SQL, and what a person edits about a run
(name, tags, notes) or removes (whole runs, after a confirmation on the page)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Float, String, and_, cast, delete, func, or_
from sqlmodel import select

from reasoning.errors import UserError
from store import models as m
from store.db import Store
from store.runs import RunSummary, _result_counts, _runs_with_counts, _summary


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


def library_runs(store: Store, filters: LibraryFilter | None = None, sort: str = "created_at",
                 descending: bool = True, offset: int = 0, limit: int = 50) -> tuple[list[RunSummary], int]:
    """One page of runs and the number of runs matching the filters (for pagination). Accuracy is
    aggregated and sorted in SQL, so thousands of runs cost one query per page."""
    if sort not in LIBRARY_SORTS:
        raise UserError(f"unknown sort {sort!r}: choose one of {', '.join(LIBRARY_SORTS)}")
    f = filters or LibraryFilter()
    conditions = []
    if f.text.strip():
        text = f.text.strip().lower()  # matched literally: % and _ are not wildcards
        conditions.append(or_(*[func.lower(col).contains(text, autoescape=True) for col in
                                (m.Run.name, m.Run.id, m.Run.model_name, m.Run.model_id, m.Run.strategy, m.Run.dataset)]))
    for column, values in ((m.Run.strategy, f.strategies), (m.Run.dataset, f.datasets), (m.Run.status, f.statuses)):
        if values:
            conditions.append(column.in_(values))
    if f.models:
        conditions.append(or_(m.Run.model_name.in_(f.models), m.Run.model_id.in_(f.models)))
    if f.tag.strip():
        # JSON lists serialise each tag as a quoted string: match the quoted form exactly.
        conditions.append(cast(m.Run.tags, String).contains(json.dumps(f.tag.strip()), autoescape=True))
    if f.created_from is not None:
        conditions.append(m.Run.created_at >= f.created_from)
    if f.created_to is not None:
        conditions.append(m.Run.created_at < f.created_to)
    where = and_(*conditions) if conditions else None
    with store.session() as session:
        total_query = select(func.count()).select_from(m.Run)
        if where is not None:
            total_query = total_query.where(where)
        total = session.exec(total_query).one()
        rows = _library_page(session, where, sort, descending, offset, limit)
    return rows, int(total)


def _library_page(session, where, sort: str, descending: bool, offset: int, limit: int) -> list[RunSummary]:
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


def library_facets(store: Store) -> dict[str, list[str]]:
    """The distinct strategies, models, datasets and tags present, for filter widgets."""
    with store.session() as session:
        def distinct(column):
            return sorted(v for v in session.exec(select(column).distinct()).all() if v)

        tags = sorted({t for row in session.exec(select(m.Run.tags)).all() for t in (row or [])})
        models = sorted({name or mid for name, mid in session.exec(
            select(m.Run.model_name, m.Run.model_id).distinct()).all() if name or mid})
        return {"strategies": distinct(m.Run.strategy), "models": models, "datasets": distinct(m.Run.dataset),
                "tags": tags}


def run_info(store: Store, run_id: str) -> tuple[list[str], str]:
    """A run's (tags, notes), for the form that edits them."""
    with store.session() as session:
        row = session.exec(select(m.Run.tags, m.Run.notes).where(m.Run.id == run_id)).first()
    if row is None:
        raise UserError(f"no run with id {run_id!r} in this database")
    return list(row[0] or []), row[1] or ""


def update_run_info(store: Store, run_id: str, name: str | None = None, tags: list[str] | None = None,
                    notes: str | None = None) -> None:
    """Rename a run, replace its tags or notes; None leaves a field as it is."""
    with store.session() as session:
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


def delete_runs(store: Store, run_ids: list[str]) -> int:
    """Delete runs with their nodes, results and problem lists, in one transaction; problems stay
    (other runs may share them). Returns how many runs were deleted."""
    if not run_ids:
        return 0
    with store.session() as session:
        for table in (m.Node, m.Result, m.RunProblem):
            session.execute(delete(table).where(table.run_id.in_(run_ids)))
        return session.execute(delete(m.Run).where(m.Run.id.in_(run_ids))).rowcount


@dataclass
class RunSize:
    """How much text a set of runs holds: what exporting or reporting them reads, holds and writes."""

    nodes: int
    chars: int  # characters of step texts, answers and meta, and of the questions of their problems


def run_size(store: Store, run_ids: list[str]) -> RunSize:
    """The size of these runs, summed in SQL without loading a row (the Library bounds by it what a
    read-only visitor may export or report)."""
    text = (func.length(m.Node.text) + func.coalesce(func.length(m.Node.answer), 0)
            + func.length(cast(m.Node.meta, String)))
    with store.session() as session:
        nodes, chars = session.exec(select(func.count(m.Node.id), func.coalesce(func.sum(text), 0))
                                    .where(m.Node.run_id.in_(run_ids))).one()
        questions = session.exec(select(func.coalesce(func.sum(func.length(m.Problem.question)), 0))
                                 .join(m.RunProblem, m.RunProblem.problem_id == m.Problem.id)
                                 .where(m.RunProblem.run_id.in_(run_ids))).one()
    return RunSize(nodes=int(nodes), chars=int(chars) + int(questions))

"""Runs as one portable file: versioned JSON, gzip-compressed ("thinktrace-bundle", version 1).

A bundle holds whole runs: the run row with its params (the settings to repeat it), its problems in
order, every node of every problem (pruned ones too) and every result. Nodes and results address
their problem by (dataset, key) and each other by `seq` / `parent_seq`, never by database ids, so a
bundle imports into any database. Run ids are UUIDs: importing a bundle twice, or bundles from two
machines, never duplicates or collides.

Bundles come from strangers, so reading one is defensive: a regular file only, JSON only (never
pickle), a size limit on the compressed file and on the inflated stream (counted in a first pass that
keeps nothing, so a gzip bomb costs one chunk of memory), then the one schema of the format
(store/bundle_schema.py: types, ranges, sizes, references, one tree per problem) whose error names
the first bad field ("runs[0].nodes[12].seq: expected integer"). Imported data never brings
connection settings (a server URL is dropped: the user gives it again on resume) and never changes a
built-in problem. An import is one transaction: a refused or failed import leaves the database
unchanged. Text is stored as-is; renderers escape it.
"""
from __future__ import annotations

import gzip
import io
import json
import stat
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import insert
from sqlmodel import select

import reasoning
from reasoning.errors import UserError
from reasoning.problems import builtin_problem
from reasoning.types import Problem
from store import bundle_schema as schema
from store import models as m
from store import runs as stored_runs
from store.bundle_schema import FORMAT, VERSION
from store.db import Store
from store.liveness import effective_status

_CHUNK = 1024**2
# Backend options that make the program contact a host: never taken from imported data.
CONNECTION_SETTINGS = ("base_url",)

RUN_FIELDS = ("id", "name", "created_at", "finished_at", "status", "strategy", "params", "model_backend",
              "model_id", "model_name", "model_dtype", "model_params", "verifier", "verifier_params",
              "evaluation_only", "aggregate", "dataset", "seed", "app_version", "n_problems", "tokens",
              "model_calls", "verifier_calls", "wall_seconds", "error", "tags", "notes")
PROBLEM_FIELDS = ("position", "dataset", "key", "question", "answer", "difficulty", "meta")
NODE_FIELDS = ("seq", "parent_seq", "depth", "text", "tokens", "logprob", "score", "path_score", "status",
               "finish_reason", "answer", "correct", "iteration", "meta")
RESULT_FIELDS = ("position", "node_seq", "answer", "correct", "tokens", "model_calls", "verifier_calls",
                 "wall_seconds", "votes", "meta")

# ---------------------------------------------------------------------------------------------
# Export


def export_runs(store: Store, run_ids: Iterable[str]) -> dict:
    """The bundle document (a plain dict) for these runs, in the order given."""
    run_ids = list(dict.fromkeys(run_ids))
    if not run_ids:
        raise UserError("nothing to export: give at least one run id")
    runs = []
    with store.session() as session:
        for run_id in run_ids:
            run = session.get(m.Run, run_id)
            if run is None:
                raise UserError(f"no run with id {run_id!r} in this database")
            runs.append(_export_run(session, run))
    return {"format": FORMAT, "version": VERSION, "app_version": reasoning.__version__,
            "created_at": _iso(m.utcnow()), "runs": runs}


def dump_bundle(store: Store, run_ids: Iterable[str]) -> bytes:
    """The bundle file's bytes (gzip of compact UTF-8 JSON), e.g. for a download button."""
    try:
        text = json.dumps(export_runs(store, run_ids), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise UserError("cannot export: a run holds a non-finite number (NaN or Infinity), which JSON cannot "
                        "carry") from None
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def write_bundle(store: Store, run_ids: Iterable[str], path: str | Path) -> int:
    """Write a bundle file; returns its size in bytes."""
    data = dump_bundle(store, run_ids)
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    return len(data)


def _export_run(session, run: m.Run) -> dict:
    out = {name: getattr(run, name) for name in RUN_FIELDS}
    out["status"] = effective_status(run)  # a worker pid means nothing on another machine
    out["created_at"], out["finished_at"] = _iso(run.created_at), _iso(run.finished_at)
    out["sweep"] = None
    if run.sweep_id:
        sweep = session.get(m.Sweep, run.sweep_id)
        if sweep is not None:
            out["sweep"] = {"id": sweep.id, "name": sweep.name, "created_at": _iso(sweep.created_at),
                            "params": sweep.params}
            policies = session.exec(select(m.Policy).where(m.Policy.sweep_id == sweep.id)
                                    .order_by(m.Policy.created_at)).all()
            if policies:  # compute-optimal policies fitted on the sweep (a key only when there are some)
                out["sweep"]["policies"] = [{"id": p.id, "name": p.name, "created_at": _iso(p.created_at),
                                             "oracle": p.oracle, "body": p.body} for p in policies]
    problems = session.exec(
        select(m.RunProblem.position, m.Problem).join(m.Problem, m.Problem.id == m.RunProblem.problem_id)
        .where(m.RunProblem.run_id == run.id).order_by(m.RunProblem.position)
    ).all()
    ref = {p.id: (p.dataset, p.key) for _, p in problems}
    out["problems"] = [{"position": pos, **{f: getattr(p, f) for f in PROBLEM_FIELDS[1:]}} for pos, p in problems]
    nodes = session.exec(select(m.Node).where(m.Node.run_id == run.id).order_by(m.Node.problem_id, m.Node.seq)).all()
    out["nodes"] = [_with_problem(ref, n.problem_id, {f: getattr(n, f) for f in NODE_FIELDS}) for n in nodes]
    results = session.exec(select(m.Result).where(m.Result.run_id == run.id).order_by(m.Result.position)).all()
    out["results"] = [_with_problem(ref, r.problem_id, {f: getattr(r, f) for f in RESULT_FIELDS}) for r in results]
    return out


def _with_problem(ref: dict, problem_id: int, row: dict) -> dict:
    dataset, key = ref[problem_id]
    return {"problem_dataset": dataset, "problem_key": key, **row}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------------------------------------
# Reading (untrusted input)


def read_file(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of an imported file: a regular file (not a directory, a device or a pipe) of at most
    `limit` bytes, or a UserError."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UserError(f"cannot import {path}: it is {kind}")
        _check_size(info.st_size, limit, str(path), what)
        with path.open("rb") as stream:
            data = stream.read(limit + 1)  # the file may have grown since stat
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_size(len(data), limit, str(path), what)
    return data


def _check_size(size: int, limit: int, name: str, what: str) -> None:
    if size > limit:
        raise UserError(f"{name} is {size / 1024**2:.0f} MB: larger than the {limit / 1024**2:.0f} MB limit for {what}")


def read_bundle(source: bytes | str | Path) -> schema.BundleIn:
    """Decompress, parse and validate a bundle from a path or from the file's bytes. Raises
    UserError with one clear line for anything that is not a sound bundle of this version."""
    limit = schema.MAX_COMPRESSED_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "bundle"
        _check_size(len(data), limit, name, "bundles")
    else:
        name = str(source)
        data = read_file(source, limit, "bundles")
    text = _inflate(lambda: io.BytesIO(data), name)
    return schema.parse(schema.load_json(text, name))


def _inflate(open_raw: Callable[[], io.BytesIO], name: str) -> bytearray:
    """The gzip stream's content, refused as soon as it passes MAX_DECOMPRESSED_BYTES. A first pass
    only counts (memory: one chunk), so a gzip bomb is stopped at the limit without being held; a
    sound file is then inflated again into memory."""
    limit = schema.MAX_DECOMPRESSED_BYTES
    for keep in (False, True):
        out, total = bytearray(), 0
        try:
            with gzip.GzipFile(fileobj=open_raw(), mode="rb") as stream:
                while chunk := stream.read(_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise UserError(f"{name} refused: it decompresses to more than "
                                        f"{limit / 1024**2:.0f} MB (the limit for bundles)")
                    if keep:
                        out += chunk
        except gzip.BadGzipFile:
            raise UserError(f"{name} is not a ThinkTrace bundle: not a gzip file") from None
        except EOFError:
            raise UserError(f"{name} is truncated: the gzip stream ends early (incomplete download?)") from None
        except zlib.error as exc:
            raise UserError(f"{name} is corrupt: gzip data error ({exc})") from None
    return out


def validate_bundle(doc: dict) -> schema.BundleIn:
    """The validated bundle of a document already parsed (peer converters build one in memory)."""
    return schema.parse(doc)


# ---------------------------------------------------------------------------------------------
# Import


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # run ids added
    skipped: list[str] = field(default_factory=list)  # run ids already present (left as they are)

    def message(self) -> str:
        parts = [f"imported {len(self.imported)} run{'s' * (len(self.imported) != 1)}"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} already present (unchanged)")
        return ", ".join(parts)


def import_bundle(store: Store, source: bytes | str | Path | dict) -> ImportReport:
    """Read (or validate, given a document) and import a bundle in one transaction. Runs already in
    the database are skipped; problems are matched by (dataset, key) and their content
    (`store.runs.problem_ids`)."""
    bundle = schema.parse(source) if isinstance(source, dict) else read_bundle(source)
    problems = {i: _problems(run, f"runs[{i}]") for i, run in enumerate(bundle.runs)}
    report = ImportReport()
    with store.session() as session:
        ids = [run.id for run in bundle.runs]
        present = set(session.exec(select(m.Run.id).where(m.Run.id.in_(ids))).all()) if ids else set()
        for i, run in enumerate(bundle.runs):
            if run.id in present:
                report.skipped.append(run.id)
                continue
            _import_run(session, run, problems[i])
            report.imported.append(run.id)
    return report


def _problems(run: schema.RunIn, where: str) -> list[Problem]:
    """The run's problems as the engine's type; a built-in set's problem is the generator's (arith) or
    the shipped file's (gsm8k, math500), and a bundle that says otherwise is refused."""
    out = []
    for j, p in enumerate(run.problems):
        problem = Problem(key=p.key, question=p.question, answer=p.answer, dataset=p.dataset,
                          difficulty=p.difficulty, meta=p.meta)
        try:
            made = builtin_problem(p.dataset, p.key)
        except UserError as exc:
            raise UserError(f"{where}.problems[{j}]: {exc}") from None
        if made is not None and (made.question, made.answer) != (p.question, p.answer):
            source = "its generator makes" if p.dataset.startswith("arith:") else "the shipped benchmark has"
            raise UserError(f"{where}.problems[{j}]: problem {p.key!r} of the built-in set {p.dataset!r} has "
                            f"another question or answer than {source}: refused (built-in problems "
                            f"always come from the generator or the shipped data)")
        out.append(made or problem)
    return out


def _import_run(session, run: schema.RunIn, problems: list[Problem]) -> None:
    problem_ids = stored_runs.problem_ids(session, problems)
    sweep = run.sweep
    if sweep and session.get(m.Sweep, sweep.id) is None:
        session.add(m.Sweep(id=sweep.id, name=sweep.name, params=_without_connection(sweep.params),
                            created_at=sweep.created_at or m.utcnow()))
        session.flush()  # before the run that refers to it (no ORM relationship orders the two)
    for policy in sweep.policies if sweep else ():
        if session.get(m.Policy, policy.id) is None:
            session.add(m.Policy(id=policy.id, name=policy.name, sweep_id=sweep.id, oracle=policy.oracle,
                                 body=policy.body, created_at=policy.created_at or m.utcnow()))
            session.flush()
    values = {f: getattr(run, f) for f in RUN_FIELDS}
    values["params"] = _without_connection(run.params)
    values["created_at"] = run.created_at or m.utcnow()
    if values["status"] == m.RUNNING:
        values["status"] = m.INTERRUPTED  # its worker lives (if at all) on another machine
    session.add(m.Run(**values, sweep_id=sweep.id if sweep else None, worker_pid=None))
    session.flush()
    session.add_all([m.RunProblem(run_id=run.id, position=p.position, problem_id=problem_ids[(p.dataset, p.key)])
                     for p in run.problems])
    session.flush()

    def rows(items, names):
        return [{**{f: getattr(item, f) for f in names}, "run_id": run.id,
                 "problem_id": problem_ids[(item.problem_dataset, item.problem_key)]} for item in items]

    # Bulk inserts: a run can hold many thousands of nodes (every row has every field: one INSERT shape).
    if run.nodes:
        session.execute(insert(m.Node), rows(run.nodes, NODE_FIELDS))
    if run.results:
        session.execute(insert(m.Result), rows(run.results, RESULT_FIELDS))


def _without_connection(params: dict) -> dict:
    """Settings as imported: the backend keeps its name, but a server address in them is dropped, so
    a bundle can never make a resume send the user's API key (or the questions) to a host it chose."""
    options = params.get("backend_options")
    if not isinstance(options, dict) or not any(name in options for name in CONNECTION_SETTINGS):
        return params
    return {**params, "backend_options": {k: v for k, v in options.items() if k not in CONNECTION_SETTINGS}}

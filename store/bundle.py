"""Runs as one portable file: versioned JSON, gzip-compressed ("thinktrace-bundle", version 1).

A bundle holds whole runs: the run row with its params (the settings to repeat it), its problems in
order, every node of every problem (pruned ones too) and every result. Nodes and results address
their problem by (dataset, key) and each other by `seq` / `parent_seq`, never by database ids, so a
bundle imports into any database. Run ids are UUIDs: importing a bundle twice, or bundles from two
machines, never duplicates or collides.

Bundles come from strangers, so reading one is defensive: JSON only (never pickle), a size limit on
the compressed file and on the decompressed stream (read in chunks, so a gzip bomb is refused
before it is allocated), and a schema check whose error names the first bad field
("runs[0].nodes[12].seq: expected integer"). An import is one transaction: a refused or failed
import leaves the database unchanged. Text is stored as-is; renderers escape it.
"""
from __future__ import annotations

import gzip
import io
import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import insert
from sqlmodel import select

import reasoning
from reasoning.errors import UserError
from store import models as m
from store.db import Store
from store.liveness import effective_status

FORMAT = "thinktrace-bundle"
VERSION = 1
# Read at call time (not bound as defaults) so a deployment or a test can lower them.
MAX_COMPRESSED_BYTES = 200 * 1024**2
MAX_DECOMPRESSED_BYTES = 1024**3
_CHUNK = 1024**2

RUN_FIELDS = ("id", "name", "created_at", "finished_at", "status", "strategy", "params", "model_backend",
              "model_id", "model_name", "model_dtype", "model_params", "verifier", "verifier_params",
              "evaluation_only", "aggregate", "dataset", "seed", "app_version", "n_problems", "tokens",
              "model_calls", "verifier_calls", "wall_seconds", "error", "tags", "notes")
PROBLEM_FIELDS = ("position", "dataset", "key", "question", "answer", "difficulty", "meta")
NODE_FIELDS = ("seq", "parent_seq", "depth", "text", "tokens", "logprob", "score", "path_score", "status",
               "finish_reason", "answer", "correct", "iteration", "meta")
RESULT_FIELDS = ("position", "node_seq", "answer", "correct", "tokens", "model_calls", "verifier_calls",
                 "wall_seconds", "votes", "meta")

# Field -> (kind, required). A kind ending in "?" also accepts null. Missing optional fields take
# the table's default, so hand-written or converted bundles need only what they know.
_RUN_SCHEMA = {
    "id": ("uuid", True), "name": ("str", False), "created_at": ("datetime", False),
    "finished_at": ("datetime?", False), "status": ("status", False), "strategy": ("str", True),
    "params": ("dict", False), "model_backend": ("str", False), "model_id": ("str", False),
    "model_name": ("str", False), "model_dtype": ("str", False), "model_params": ("int", False),
    "verifier": ("str?", False), "verifier_params": ("int", False), "evaluation_only": ("bool", False),
    "aggregate": ("str", False), "dataset": ("str", False), "seed": ("int", False),
    "app_version": ("str", False), "n_problems": ("int", False), "tokens": ("int", False),
    "model_calls": ("int", False), "verifier_calls": ("int", False), "wall_seconds": ("number", False),
    "error": ("str?", False), "tags": ("strlist", False), "notes": ("str", False), "sweep": ("dict?", False),
    "problems": ("list", True), "nodes": ("list", True), "results": ("list", True),
}
_PROBLEM_SCHEMA = {
    "position": ("int", True), "dataset": ("str", True), "key": ("str", True), "question": ("str", True),
    "answer": ("str?", False), "difficulty": ("int?", False), "meta": ("dict", False),
}
_NODE_SCHEMA = {
    "problem_dataset": ("str", True), "problem_key": ("str", True), "seq": ("int", True),
    "parent_seq": ("int?", True), "depth": ("int", False), "text": ("str", True), "tokens": ("int", False),
    "logprob": ("number?", False), "score": ("number?", False), "path_score": ("number?", False),
    "status": ("str", False), "finish_reason": ("str?", False), "answer": ("str?", False),
    "correct": ("bool?", False), "iteration": ("int?", False), "meta": ("dict", False),
}
_RESULT_SCHEMA = {
    "problem_dataset": ("str", True), "problem_key": ("str", True), "position": ("int", False),
    "node_seq": ("int?", False), "answer": ("str?", False), "correct": ("bool?", False),
    "tokens": ("int", False), "model_calls": ("int", False), "verifier_calls": ("int", False),
    "wall_seconds": ("number", False), "votes": ("dict", False), "meta": ("dict", False),
}
_SWEEP_SCHEMA = {"id": ("uuid", True), "name": ("str", False), "created_at": ("datetime", False),
                 "params": ("dict", False)}
_KIND_WORDS = {"str": "string", "int": "integer", "number": "number", "bool": "true or false",
               "dict": "object", "list": "array", "strlist": "array of strings", "uuid": "UUID string",
               "datetime": "ISO date-time string", "status": f"one of {', '.join(m.RUN_STATUSES)}"}


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
    text = json.dumps(export_runs(store, run_ids), ensure_ascii=False, separators=(",", ":"))
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


def read_bundle(source: bytes | str | Path) -> dict:
    """Decompress, parse and validate a bundle from a path or from the file's bytes. Raises
    UserError with one clear line for anything that is not a sound bundle of this version."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "bundle"
        if len(data) > MAX_COMPRESSED_BYTES:
            raise UserError(f"{name} is {len(data) / 1024**2:.0f} MB: larger than the "
                            f"{MAX_COMPRESSED_BYTES / 1024**2:.0f} MB limit for bundles")
        raw = io.BytesIO(data)
    else:
        path, name = Path(source), str(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UserError(f"cannot read {name}: {exc.strerror}") from None
        if size > MAX_COMPRESSED_BYTES:
            raise UserError(f"{name} is {size / 1024**2:.0f} MB: larger than the "
                            f"{MAX_COMPRESSED_BYTES / 1024**2:.0f} MB limit for bundles")
        raw = path.open("rb")
    with raw:
        text = _gunzip_limited(raw, name)
    try:
        doc = json.loads(text)
    except UnicodeDecodeError:
        raise UserError(f"{name} is not a ThinkTrace bundle: its content is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{name} is not a ThinkTrace bundle: invalid JSON at line {exc.lineno} "
                        f"column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{name} is not a ThinkTrace bundle: JSON nested too deeply") from None
    validate_bundle(doc)
    return doc


def _gunzip_limited(raw, name: str) -> bytes:
    """Decompress in chunks, refusing the stream as soon as it passes the limit (a gzip bomb never
    gets allocated)."""
    limit = MAX_DECOMPRESSED_BYTES
    chunks, total = [], 0
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise UserError(f"{name} refused: it decompresses to more than "
                                    f"{limit / 1024**2:.0f} MB (the limit for bundles)")
                chunks.append(chunk)
    except gzip.BadGzipFile:
        raise UserError(f"{name} is not a ThinkTrace bundle: not a gzip file") from None
    except EOFError:
        raise UserError(f"{name} is truncated: the gzip stream ends early (incomplete download?)") from None
    except zlib.error as exc:
        raise UserError(f"{name} is corrupt: gzip data error ({exc})") from None
    return b"".join(chunks)


def validate_bundle(doc: Any) -> None:
    """Check shape, types and references; the error names the first bad field."""
    if not isinstance(doc, dict):
        raise UserError("not a ThinkTrace bundle: the top level must be a JSON object")
    if doc.get("format") != FORMAT:
        raise UserError(f"not a ThinkTrace bundle: format is {doc.get('format')!r}, expected {FORMAT!r}")
    version = doc.get("version")
    if not _is_int(version):
        raise UserError("version: expected integer")
    if version != VERSION:
        newer = " (made by a newer ThinkTrace: upgrade to import it)" if version > VERSION else ""
        raise UserError(f"unsupported bundle version {version}: this ThinkTrace reads version {VERSION}{newer}")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise UserError("runs: expected array")
    seen_runs: set[str] = set()
    questions: dict[tuple[str, str], str] = {}
    for i, run in enumerate(runs):
        where = f"runs[{i}]"
        _check_record(run, _RUN_SCHEMA, where)
        if run["id"] in seen_runs:
            raise UserError(f"{where}.id: run {run['id']} appears twice in the bundle")
        seen_runs.add(run["id"])
        if run.get("sweep") is not None:
            _check_record(run["sweep"], _SWEEP_SCHEMA, f"{where}.sweep")
        _check_run_references(run, where, questions)


def _check_run_references(run: dict, where: str, questions: dict) -> None:
    problems: set[tuple[str, str]] = set()
    positions: set[int] = set()
    for j, problem in enumerate(run["problems"]):
        at = f"{where}.problems[{j}]"
        _check_record(problem, _PROBLEM_SCHEMA, at)
        ref = (problem["dataset"], problem["key"])
        if ref in problems:
            raise UserError(f"{at}.key: problem {ref[1]!r} of {ref[0]!r} is listed twice")
        if problem["position"] in positions:
            raise UserError(f"{at}.position: position {problem['position']} is used twice")
        if questions.setdefault(ref, problem["question"]) != problem["question"]:
            raise UserError(f"{at}.question: problem {ref[1]!r} of {ref[0]!r} has two different questions")
        problems.add(ref)
        positions.add(problem["position"])
    seqs: dict[tuple[str, str], set[int]] = {ref: set() for ref in problems}
    for j, node in enumerate(run["nodes"]):
        at = f"{where}.nodes[{j}]"
        _check_record(node, _NODE_SCHEMA, at)
        ref = _problem_ref(node, problems, at)
        if node["seq"] in seqs[ref]:
            raise UserError(f"{at}.seq: seq {node['seq']} is used twice in problem {ref[1]!r}")
        seqs[ref].add(node["seq"])
    for j, node in enumerate(run["nodes"]):
        parent = node["parent_seq"]
        if parent is not None and parent not in seqs[(node["problem_dataset"], node["problem_key"])]:
            raise UserError(f"{where}.nodes[{j}].parent_seq: no node with seq {parent} in the same problem")
    done: set[tuple[str, str]] = set()
    for j, result in enumerate(run["results"]):
        at = f"{where}.results[{j}]"
        _check_record(result, _RESULT_SCHEMA, at)
        ref = _problem_ref(result, problems, at)
        if ref in done:
            raise UserError(f"{at}: a second result for problem {ref[1]!r}")
        done.add(ref)
        if result.get("node_seq") is not None and result["node_seq"] not in seqs[ref]:
            raise UserError(f"{at}.node_seq: no node with seq {result['node_seq']} in problem {ref[1]!r}")


def _problem_ref(row: dict, problems: set, at: str) -> tuple[str, str]:
    ref = (row["problem_dataset"], row["problem_key"])
    if ref not in problems:
        raise UserError(f"{at}.problem_key: problem {ref[1]!r} of {ref[0]!r} is not in the run's problems")
    return ref


def _check_record(value: Any, schema: dict, where: str) -> None:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected object")
    for name, (kind, required) in schema.items():
        if name not in value:
            if required:
                raise UserError(f"{where}.{name}: missing")
            continue
        nullable = kind.endswith("?")
        kind = kind.rstrip("?")
        item = value[name]
        if item is None and nullable:
            continue
        if not _KIND_CHECKS[kind](item):
            raise UserError(f"{where}.{name}: expected {_KIND_WORDS[kind]}{' or null' if nullable else ''}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_uuid(v: Any) -> bool:
    try:
        return isinstance(v, str) and str(uuid.UUID(v)) == v.lower()
    except ValueError:
        return False


def _is_datetime(v: Any) -> bool:
    try:
        return isinstance(v, str) and datetime.fromisoformat(v) is not None
    except ValueError:
        return False


_KIND_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "number": lambda v: _is_int(v) or isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "strlist": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "uuid": _is_uuid,
    "datetime": _is_datetime,
    "status": lambda v: v in m.RUN_STATUSES,
}


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
    """Read (unless given a validated dict) and import a bundle in one transaction. Runs already
    in the database are skipped; problems are matched by (dataset, key)."""
    doc = source if isinstance(source, dict) else read_bundle(source)
    if isinstance(source, dict):
        validate_bundle(doc)
    report = ImportReport()
    with store.session() as session:
        ids = [run["id"] for run in doc["runs"]]
        present = set(session.exec(select(m.Run.id).where(m.Run.id.in_(ids))).all()) if ids else set()
        for run in doc["runs"]:
            if run["id"] in present:
                report.skipped.append(run["id"])
                continue
            _import_run(session, run)
            report.imported.append(run["id"])
    return report


def _import_run(session, run: dict) -> None:
    problem_ids = {}
    for problem in run["problems"]:
        row = session.exec(select(m.Problem).where(m.Problem.dataset == problem["dataset"],
                                                   m.Problem.key == problem["key"])).first()
        if row is None:
            row = m.Problem(**{f: problem[f] for f in PROBLEM_FIELDS[1:] if f in problem})
            session.add(row)
            session.flush()
        elif row.question != problem["question"]:
            raise UserError(f"problem {problem['key']!r} of dataset {problem['dataset']!r} already exists "
                            f"here with a different question: refusing to mix them")
        problem_ids[(problem["dataset"], problem["key"])] = row.id
    sweep = run.get("sweep")
    if sweep and session.get(m.Sweep, sweep["id"]) is None:
        session.add(m.Sweep(id=sweep["id"], name=sweep.get("name", ""), params=sweep.get("params", {}),
                            created_at=_parse_dt(sweep.get("created_at")) or m.utcnow()))
    values = {f: run[f] for f in RUN_FIELDS if f in run}
    values["created_at"] = _parse_dt(run.get("created_at")) or m.utcnow()
    values["finished_at"] = _parse_dt(run.get("finished_at"))
    if values.get("status") == m.RUNNING:
        values["status"] = m.INTERRUPTED  # its worker lives (if at all) on another machine
    session.add(m.Run(**values, sweep_id=sweep["id"] if sweep else None, worker_pid=None))
    session.flush()
    session.add_all([m.RunProblem(run_id=run["id"], position=p["position"],
                                  problem_id=problem_ids[(p["dataset"], p["key"])]) for p in run["problems"]])
    session.flush()

    def rows(items, names):
        return [{**{f: item[f] for f in names if f in item}, "run_id": run["id"],
                 "problem_id": problem_ids[(item["problem_dataset"], item["problem_key"])]} for item in items]

    # Bulk inserts: a run can hold many thousands of nodes. Column defaults fill what a row lacks,
    # so every row is completed with the table's defaults to keep one INSERT shape.
    if run["nodes"]:
        session.execute(insert(m.Node), _with_defaults(rows(run["nodes"], NODE_FIELDS), _NODE_DEFAULTS))
    if run["results"]:
        session.execute(insert(m.Result), _with_defaults(rows(run["results"], RESULT_FIELDS), _RESULT_DEFAULTS))


_NODE_DEFAULTS = {"depth": 0, "tokens": 0, "logprob": None, "score": None, "path_score": None, "status": "kept",
                  "finish_reason": None, "answer": None, "correct": None, "iteration": None, "meta": {}}
_RESULT_DEFAULTS = {"position": 0, "node_seq": None, "answer": None, "correct": None, "tokens": 0,
                    "model_calls": 0, "verifier_calls": 0, "wall_seconds": 0.0, "votes": {}, "meta": {}}


def _with_defaults(rows: list[dict], defaults: dict) -> list[dict]:
    return [{**defaults, **row} for row in rows]


def _parse_dt(value: str | None) -> datetime | None:
    """ISO text to an aware UTC datetime (the store's convention); naive text is taken as UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)

"""Fuzzing every file a stranger can hand the program (issue 14): a real exported bundle, a
search-and-learn file, an llm-reasoners TreeLog and a dataset, each mutated by Hypothesis (wrong
types, out-of-range and huge numbers, NaN and Infinity, huge and deeply nested values, cycles,
missing and duplicated references, odd encodings, damaged gzip).

For every imported case the real command runs (`python -m reasoning import`, in this process) and
either succeeds, leaving a database the program can read back (every node reachable from its root,
counts non-negative, numbers finite, JSON columns strict, no server address kept), or exits 2 with
exactly one line on stderr and the database file byte-for-byte unchanged. Never a traceback, and no
new memory peak above 1 GB; the cases that could blow memory up (a gzip bomb, 100k-deep nesting, a
50 MB text) also run as their own processes, whose peak RSS is measured. A dataset must give problems
or one UserError, and those problems must store (or be one UserError).

The seed is fixed (derandomize) and the examples bounded, so the file is deterministic and takes
well under a minute.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_cli import run_cli
from reasoning.errors import UserError
from reasoning.problems import load_problems
from store import Store, bundle
from store import db as store_db
from store import models as m
from store.runs import create_run
from test_bundle import make_run
from test_peers import SAL_ROWS, TREELOG

ROOT = Path(__file__).resolve().parents[1]
OLD_BUNDLE = ROOT / "tests" / "fixtures" / "thinktrace-0.1.0.thinktrace.gz"
GB = 1024**3

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

# Raw JSON text that json.dumps cannot write (or should not build in memory): stand-ins are put in
# the document, then replaced in its text.
DEEP = "[" * 100_000 + "]" * 100_000
RAW = {"NaN": "NaN", "Inf": "Infinity", "-Inf": "-Infinity", "1e400": "1e400", "-1e999": "-1e999",
       "digits": "9" * 5000, "deep": DEEP, "huge": json.dumps("x" * 300_000), "i64": str(2**63)}


class Raw(str):
    """A placeholder for raw JSON text."""


scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 1, 2**31, 2**63 - 1, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=12),
    st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "\u2028", "\ufeff", "../../etc/passwd", "done", "running",
                     "selected", "pruned", "arith:3", "s0-0", "q0", "0", "1", "2", "²",
                     "5f0c3a52-8d1e-4c1b-9a57-2d3c8f1e6b40", "http://127.0.0.1:9/v1"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                               max_size=3),
                      max_leaves=6)
hostile = st.one_of(values, values, st.sampled_from(sorted(RAW)).map(lambda key: Raw(f"@@RAW:{key}@@")))


def mutate(data, doc, structural=None) -> None:
    """1-3 changes at random places of the document (in place)."""
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        if structural is not None and data.draw(st.integers(0, 3), label="structural?") == 0:
            structural(data, doc)
            continue
        parent, key = _pick(data, doc)
        if parent is None:
            continue
        op = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "swap"]), label="op")
        if op == "replace":
            parent[key] = data.draw(hostile, label="value")
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(data.draw(st.integers(0, len(parent)), label="at"), json.loads(json.dumps(parent[key])))
        elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
            other = data.draw(st.integers(0, len(parent) - 1), label="with")
            parent[key], parent[other] = parent[other], parent[key]


def _pick(data, doc):
    """A (container, key) somewhere in the document, at a drawn depth."""
    parent, key, node = None, None, doc
    for _ in range(data.draw(st.integers(1, 7), label="depth")):
        if not isinstance(node, (dict, list)) or not node:
            break
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        parent, key = node, data.draw(st.sampled_from(list(keys)), label="key")
        node = node[key]
    return parent, key


def dumps(data, doc) -> bytes:
    """The document as bytes: JSON (NaN allowed, raw stand-ins expanded), in a drawn encoding."""
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    text = json.dumps(doc, allow_nan=True, ensure_ascii=ascii_only)
    for key, raw in RAW.items():
        text = text.replace(json.dumps(f"@@RAW:{key}@@"), raw)
    encoding = data.draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1", "cut", "flip"]),
                         label="encoding")
    if encoding in ("utf-8-sig", "utf-16", "latin-1"):
        return text.encode(encoding, "surrogatepass" if encoding != "latin-1" else "replace")
    raw = text.encode("utf-8", "surrogatepass")
    if encoding == "cut":
        return raw[: data.draw(st.integers(0, len(raw)), label="cut at")]
    if encoding == "flip" and raw:
        at = data.draw(st.integers(0, len(raw) - 1), label="flip at")
        return raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="bits")]) + raw[at + 1:]
    return raw


# ---------------------------------------------------------------------------------------------
# The database: a template with one run in it, copied for each case


@pytest.fixture(scope="module")
def workdir():
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    template = folder / "template.db"
    store = Store(f"sqlite:///{template}")
    run_id = make_run(store)
    _release(folder)
    yield folder, template, bundle_doc(store_path=folder / "source.db", run_id=run_id, template=template)
    _release(folder)
    shutil.rmtree(folder, ignore_errors=True)


def bundle_doc(store_path: Path, run_id: str, template: Path) -> dict:
    shutil.copy(template, store_path)
    doc = bundle.export_runs(Store(f"sqlite:///{store_path}"), [run_id])
    doc["runs"][0]["sweep"] = {"id": "3f2b6c1e-0d4a-4c8e-9b7a-5e6f7a8b9c0d", "name": "fuzz sweep",
                               "params": {"backend": "openai", "backend_options": {"base_url": "http://127.0.0.1:9/v1"}}}
    doc["runs"][0]["params"]["backend_options"] = {"base_url": "http://127.0.0.1:9/v1"}
    doc["runs"][0]["id"] = "6a1f3c2e-0b4d-4e8f-9a7b-1c2d3e4f5a6b"  # not the template's run
    return doc


def _release(folder: Path) -> None:
    """Close this process's engines on databases under `folder` (SQLite checkpoints on close)."""
    for url in [url for url in store_db._engines if str(folder) in url]:
        store_db._engines.pop(url).dispose()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_import(workdir, blob: bytes, *args: str) -> None:
    """Import `blob` into a copy of the template: exit 0 and a sound database, or exit 2, one line,
    and the file unchanged. Never another exit code or an exception; no new memory peak over 1 GB."""
    folder, template, _ = workdir
    case = Path(tempfile.mkdtemp(dir=folder))
    try:
        db, source = case / "t.db", case / "input"
        shutil.copy(template, db)
        source.write_bytes(blob)
        before, peak = db.read_bytes(), _peak_rss()
        result = run_cli("import", str(source), *args, db=db)
        assert "Traceback" not in result.stderr, result.stderr
        if result.code == 0:
            assert result.stderr == ""
            listed = run_cli("runs", "--json", db=db)
            assert listed.code == 0, listed
            json.loads(listed.stdout, parse_constant=_refuse)
            _release(case)
            check_consistent(db)
        else:
            assert result.code == 2, result
            assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
            _release(case)
            assert db.read_bytes() == before, "a refused import changed the database"
        assert _peak_rss() == peak or _peak_rss() < GB, "a new memory peak above 1 GB"
    finally:
        _release(case)
        shutil.rmtree(case, ignore_errors=True)


def _refuse(constant):
    raise AssertionError(f"non-strict JSON: {constant}")


def check_consistent(db: Path) -> None:
    """What every reader of the store relies on, checked with plain SQL."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for table, columns in {"run": ("params", "tags"), "sweep": ("params",), "problem": ("meta",),
                               "node": ("meta",), "result": ("votes", "meta")}.items():
            for row in con.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                for text in row:
                    json.loads(text, parse_constant=_refuse)
        for params, in con.execute("SELECT params FROM run UNION ALL SELECT params FROM sweep"):
            assert "base_url" not in (json.loads(params).get("backend_options") or {})
        counts = {"run": ("n_problems", "tokens", "model_calls", "verifier_calls", "wall_seconds", "model_params"),
                  "node": ("seq", "depth", "tokens"), "result": ("tokens", "model_calls", "verifier_calls", "wall_seconds")}
        for table, columns in counts.items():
            for row in con.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                assert all(isinstance(v, (int, float)) and v >= 0 and math.isfinite(v) for v in row), (table, row)
        for row in con.execute("SELECT logprob, score, path_score FROM node"):
            assert all(v is None or math.isfinite(v) for v in row)
        for run_id, n, listed in con.execute("SELECT id, n_problems, (SELECT count(*) FROM runproblem "
                                             "WHERE run_id = run.id) FROM run"):
            assert n == listed, run_id
        trees: dict[tuple, dict[int, int | None]] = {}
        for run_id, problem_id, seq, parent in con.execute("SELECT run_id, problem_id, seq, parent_seq FROM node"):
            trees.setdefault((run_id, problem_id), {})[seq] = parent
        for tree in trees.values():
            roots = [seq for seq, parent in tree.items() if parent is None]
            assert len(roots) == 1
            for seq in tree:  # every node reaches the root, each walk bounded by what it has seen
                seen = set()
                while tree[seq] is not None:
                    assert seq not in seen and tree[seq] in tree
                    seen.add(seq)
                    seq = tree[seq]
                assert seq == roots[0]
        for run_id, problem_id, seq in con.execute("SELECT run_id, problem_id, node_seq FROM result "
                                                   "WHERE node_seq IS NOT NULL"):
            assert seq in trees.get((run_id, problem_id), {})
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# Bundles


def _bundle_structure(data, doc) -> None:
    """Changes that keep every field well-typed but break what fields say together: cycles, second
    roots, dangling and duplicated references."""
    runs = [run for run in doc.get("runs", []) if isinstance(run, dict) and isinstance(run.get("nodes"), list)]
    if not runs:
        return
    run = data.draw(st.sampled_from(runs), label="run")
    nodes = [n for n in run["nodes"] if isinstance(n, dict)]
    if not nodes:
        return
    node = data.draw(st.sampled_from(nodes), label="node")
    seqs = [n.get("seq") for n in nodes]
    choice = data.draw(st.sampled_from(["parent", "result", "seq", "problem"]), label="structure")
    if choice == "parent":
        node["parent_seq"] = data.draw(st.sampled_from(seqs + [None, -1, 10**6]), label="parent_seq")
    elif choice == "seq":
        node["seq"] = data.draw(st.sampled_from(seqs), label="seq")
    elif choice == "result" and run.get("results"):
        run["results"][0]["node_seq"] = data.draw(st.sampled_from(seqs + [None, 10**6]), label="node_seq")
    elif choice == "problem":
        node["problem_key"] = data.draw(st.sampled_from(["q0", "q1", "q2", "s0-0", "nope"]), label="problem_key")


@FUZZ
@given(data=st.data())
def test_a_mutated_bundle_imports_soundly_or_is_one_line(workdir, data):
    base = data.draw(st.sampled_from(["scripted", "0.1.0"]), label="bundle")
    doc = json.loads(json.dumps(workdir[2])) if base == "scripted" else json.loads(gzip.decompress(OLD_BUNDLE.read_bytes()))
    mutate(data, doc, _bundle_structure)
    blob = gzip.compress(dumps(data, doc), compresslevel=1)
    damage = data.draw(st.sampled_from(["none"] * 8 + ["cut", "flip"]), label="gzip damage")
    if damage == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob)), label="cut gzip at")]
    elif damage == "flip":
        at = data.draw(st.integers(0, len(blob) - 1), label="flip gzip at")
        blob = blob[:at] + bytes([blob[at] ^ 0x5A]) + blob[at + 1:]
    check_import(workdir, blob)


def test_the_unmutated_bundles_import(workdir):
    """The harness's baseline: both starting points are sound (and lose their server address)."""
    check_import(workdir, gzip.compress(json.dumps(workdir[2]).encode()))
    check_import(workdir, OLD_BUNDLE.read_bytes())


# ---------------------------------------------------------------------------------------------
# Peer files


@FUZZ
@given(data=st.data())
def test_a_mutated_search_and_learn_file_imports_soundly_or_is_one_line(workdir, data):
    rows = json.loads(json.dumps(SAL_ROWS))
    mutate(data, rows)
    if data.draw(st.booleans(), label="jsonl"):
        blob = b"\n".join(dumps(data, row) if isinstance(row, (dict, list)) else json.dumps(row).encode() for row in rows)
    else:
        blob = dumps(data, rows)
    check_import(workdir, blob, "--from", "search-and-learn")


def _treelog_structure(data, doc) -> None:
    """Loops and odd references in the tree: selected edges anywhere, edges back up, odd ids."""
    snapshot = doc["logs"][-1] if isinstance(doc.get("logs"), list) and doc["logs"] else None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("nodes"), dict) or \
            not isinstance(snapshot.get("edges"), dict):
        return
    ids = list(range(-1, 7)) + ["0", "x", None]
    choice = data.draw(st.sampled_from(["selected", "edge", "id"]), label="structure")
    if choice == "selected" and snapshot["nodes"]:
        node = snapshot["nodes"][data.draw(st.sampled_from(sorted(snapshot["nodes"])), label="node")]
        if isinstance(node, dict):
            node["selected_edge"] = data.draw(st.sampled_from(ids), label="selected_edge")
    elif choice == "edge":
        edge_id = str(len(snapshot["edges"]) + data.draw(st.integers(0, 1), label="new or last") - 1)
        snapshot["edges"][edge_id] = {"id": data.draw(st.sampled_from(ids), label="edge id"),
                                      "source": data.draw(st.sampled_from(ids), label="source"),
                                      "target": data.draw(st.sampled_from(ids), label="target"), "data": {}}
    elif snapshot["nodes"]:
        node = snapshot["nodes"][data.draw(st.sampled_from(sorted(snapshot["nodes"])), label="node")]
        if isinstance(node, dict):
            node["id"] = data.draw(st.one_of(st.sampled_from(ids), hostile), label="id")


@FUZZ
@given(data=st.data())
def test_a_mutated_llm_reasoners_file_imports_soundly_or_is_one_line(workdir, data):
    doc = json.loads(json.dumps(TREELOG))
    mutate(data, doc, _treelog_structure)
    check_import(workdir, dumps(data, doc), "--from", "llm-reasoners")


# ---------------------------------------------------------------------------------------------
# Datasets

DATASET = [
    {"question": "Tom has 3 apples and buys 4 more. How many now?", "answer": "Tom has 3 + 4 = 7.\n#### 7"},
    {"problem": "What is $\\frac{6}{3}$?", "solution": "It is $\\boxed{2}$.", "level": "Level 2", "id": "m1"},
    {"question": "A question without a known answer", "answer": None, "key": "open"},
]


@settings(FUZZ, max_examples=200)  # in-process and fast
@given(data=st.data())
def test_a_mutated_dataset_gives_problems_or_one_user_error(workdir, data):
    folder = workdir[0]
    rows = json.loads(json.dumps(DATASET))
    mutate(data, rows)
    path = folder / "dataset.jsonl"
    path.write_bytes(b"\n".join(dumps(data, row) if isinstance(row, (dict, list)) else json.dumps(row).encode()
                                for row in rows))
    try:
        problems = load_problems(str(path))
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert problems and all(isinstance(p.question, str) and p.question for p in problems)
    store = Store(f"sqlite:///{folder / 'datasets.db'}")
    try:
        create_run(store, m.Run(strategy="cot", dataset=problems[0].dataset), problems)
    except UserError as exc:
        assert "\n" not in str(exc)


# ---------------------------------------------------------------------------------------------
# The inputs that could exhaust memory, each in its own process with its peak RSS measured


def _bomb() -> bytes:
    packer, parts, zeros = zlib.compressobj(1, zlib.DEFLATED, 31), [], b" " * 1024**2
    parts.append(packer.compress(b'{"format": "thinktrace-bundle", "version": 1, "runs": [], "pad": "'))
    for _ in range(300):  # 300 MB of spaces: past the 256 MB limit, about 1 MB compressed
        parts.append(packer.compress(zeros))
    return b"".join(parts) + packer.compress(b'"}') + packer.flush()


def _sal_with(question: str) -> bytes:
    return json.dumps({**SAL_ROWS[0], "problem": question}).encode()


@pytest.mark.parametrize("name,make,args", [
    ("bomb.gz", _bomb, ()),
    ("deep.gz", lambda: gzip.compress(b'{"format": "thinktrace-bundle", "version": 1, "runs": ' + DEEP.encode() + b"}"), ()),
    ("deep.jsonl", lambda: ('{"problem": ' + DEEP + "}").encode(), ("--from", "search-and-learn")),
    ("huge.jsonl", lambda: _sal_with("x" * 50 * 1024**2), ("--from", "search-and-learn")),
    ("deep.json", lambda: ('{"logs": ' + DEEP + "}").encode(), ("--from", "llm-reasoners")),
])
def test_inputs_built_to_exhaust_memory_are_refused_within_1_gb(tmp_path, name, make, args):
    path = tmp_path / name
    path.write_bytes(make())
    env = {**os.environ, "THINKTRACE_DB": str(tmp_path / "t.db")}
    # The child reports its own peak (VmHWM of its memory after exec) as it exits: the rusage of a
    # waited-for child would also count the pages of this test process it was forked from.
    peak_file = tmp_path / "peak"
    command = [sys.executable, "-c", PEAK_REPORTING_IMPORT, str(peak_file), "import", str(path), *args]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    stderr = proc.stderr
    assert proc.returncode == 2 and len(stderr.splitlines()) == 1 and stderr.startswith("error: "), stderr
    peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", peak_file.read_text()).group(1))
    assert peak_kb * 1024 < GB, f"peak RSS {peak_kb // 1024} MB"


PEAK_REPORTING_IMPORT = """
import atexit, sys, runpy
peak_file = sys.argv[1]
atexit.register(lambda: open(peak_file, "w").write(open("/proc/self/status").read()))
sys.argv = ["reasoning", *sys.argv[2:]]
runpy.run_module("reasoning", run_name="__main__", alter_sys=True)
"""

"""Bundles: a run leaves one machine as a file and arrives on another identical, once, and a file
from a stranger is refused with one clear line unless it is a sound bundle of this version."""
from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import func, select

from thinktrace import runner
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from store import Store, bundle, bundle_schema
from store import models as m
from store.runs import tree_nodes

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = [Problem(key=f"q{i}", question=f"What is {i} + {i}?", answer=str(2 * i), dataset="unit-bundle")
            for i in range(3)]


def script(prompt: str, sample: int, call: int) -> str:
    i = int(prompt.split("What is ")[1].split(" ")[0])
    return f"{i} + {i} = {2 * i}\n\n<script>alert('x')</script> & more\n\nThe answer is {2 * i + sample % 2}."


def make_run(store: Store, strategy: str = "self_consistency", verifier: str | None = "self_eval", n: int = 3) -> str:
    lm = ScriptedLM(script)
    request = runner.RunRequest(strategy=strategy, dataset="unit-bundle", model="scripted", verifier=verifier,
                                name=f"{strategy} test", config=SearchConfig(n=n)).validate()
    ver = load_verifier(verifier, lm)
    run_id = runner.create_run(store, request, PROBLEMS, lm, ver)
    runner.execute(store, run_id, lm, ver)
    return run_id


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "THINKTRACE_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def counts(store: Store) -> dict[str, int]:
    with store.session() as session:
        return {t.__name__: session.exec(select(func.count()).select_from(t)).one()
                for t in (m.Run, m.Problem, m.RunProblem, m.Node, m.Result)}


def test_show_json_is_identical_after_export_and_import_into_a_fresh_database(tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    run_id = make_run(Store(f"sqlite:///{source}"))
    before = cli("show", run_id, "--json", db=source)
    assert before.returncode == 0, before.stderr
    exported = cli("export", run_id, "-o", str(tmp_path / "run.thinktrace.gz"), db=source)
    assert exported.returncode == 0, exported.stderr
    imported = cli("import", str(tmp_path / "run.thinktrace.gz"), db=target)
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 run" in imported.stdout
    after = cli("show", run_id, "--json", db=target)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert json.loads(after.stdout)["results"][0]["question"] == "What is 0 + 0?"


def test_trees_scores_and_settings_survive_the_round_trip(tmp_path):
    a, b = Store(f"sqlite:///{tmp_path / 'a.db'}"), Store(f"sqlite:///{tmp_path / 'b.db'}")
    run_id = make_run(a)
    with a.session() as session:
        run = session.get(m.Run, run_id)
        run.tags, run.notes = ["demo", "class"], "shared with the class"
    bundle.import_bundle(b, bundle.dump_bundle(a, [run_id]))
    fields = [f for f in bundle.NODE_FIELDS]
    with a.session() as s1, b.session() as s2:
        r1, r2 = s1.get(m.Run, run_id), s2.get(m.Run, run_id)
        assert r2.params == r1.params and r2.params["n"] == 3 and r2.params["verifier"] == "self_eval"
        assert (r2.tags, r2.notes, r2.name, r2.created_at) == (r1.tags, r1.notes, r1.name, r1.created_at)
        pids1 = dict(s1.exec(select(m.Problem.key, m.Problem.id)).all())
        pids2 = dict(s2.exec(select(m.Problem.key, m.Problem.id)).all())
    for key in pids1:
        n1, n2 = tree_nodes(a, run_id, pids1[key]), tree_nodes(b, run_id, pids2[key])
        assert len(n1) == len(n2) == 1 + 3 * 3
        assert [[getattr(n, f) for f in fields + ["parent_seq"]] for n in n1] == \
               [[getattr(n, f) for f in fields + ["parent_seq"]] for n in n2]
    assert any(n.score is not None for n in n2)
    assert any("<script>" in n.text for n in n2)  # text is stored as-is; renderers escape it


def test_importing_twice_adds_nothing_the_second_time(tmp_path):
    a, b = Store(f"sqlite:///{tmp_path / 'a.db'}"), Store(f"sqlite:///{tmp_path / 'b.db'}")
    first, second = make_run(a), make_run(a, strategy="cot", verifier=None, n=1)
    data = bundle.dump_bundle(a, [first, second])
    report = bundle.import_bundle(b, data)
    assert sorted(report.imported) == sorted([first, second]) and report.skipped == []
    once = counts(b)
    report = bundle.import_bundle(b, data)
    assert report.imported == [] and sorted(report.skipped) == sorted([first, second])
    assert counts(b) == once
    # both runs share the problems, matched by (dataset, key): 3 problems, not 6
    assert once["Problem"] == 3 and once["Run"] == 2 and once["RunProblem"] == 6
    # importing back into the source database is a no-op too
    assert bundle.import_bundle(a, data).imported == []


def _doc(store: Store, run_id: str) -> dict:
    return bundle.export_runs(store, [run_id])


def _gz(doc) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


@pytest.fixture()
def exported(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'src.db'}")
    return _doc(store, make_run(store))


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(version=2), "unsupported bundle version 2"),
    (lambda d: d.update(version="1"), "version: expected integer"),
    (lambda d: d.update(format="something-else"), "not a ThinkTrace bundle: format is 'something-else'"),
    (lambda d: d["runs"][0]["nodes"][4].update(seq="4"), "runs[0].nodes[4].seq: expected integer"),
    (lambda d: d["runs"][0]["nodes"][4].update(seq=True), "runs[0].nodes[4].seq: expected integer"),
    (lambda d: d["runs"][0]["nodes"][2].pop("text"), "runs[0].nodes[2].text: missing"),
    (lambda d: d["runs"][0].update(id="../../etc/passwd"), "runs[0].id: expected UUID string"),
    (lambda d: d["runs"][0].update(status="hacked"), "runs[0].status: expected one of"),
    (lambda d: d["runs"][0]["problems"][1].update(question=None), "runs[0].problems[1].question: expected string"),
    (lambda d: d["runs"][0]["nodes"][3].update(parent_seq=999), "runs[0].nodes[3].parent_seq: no node with seq 999"),
    (lambda d: d["runs"][0]["nodes"][3].update(problem_key="nope"), "runs[0].nodes[3].problem_key: problem 'nope'"),
    (lambda d: d["runs"][0]["results"][0].update(node_seq=999), "runs[0].results[0].node_seq: no node with seq 999"),
    (lambda d: d["runs"][0].update(tags=["ok", 3]), "runs[0].tags: expected array of strings"),
    (lambda d: d["runs"][0].update(tokens=-5), "runs[0].tokens: must be at least 0"),
    (lambda d: d["runs"][0].update(n_problems=-1), "runs[0].n_problems: must be at least 0"),
    (lambda d: d["runs"][0].update(n_problems=7), "runs[0].n_problems: 7, but the run lists 3 problems"),
    (lambda d: d["runs"][0]["results"][1].update(tokens=-1), "runs[0].results[1].tokens: must be at least 0"),
    (lambda d: d["runs"][0]["nodes"][2].update(tokens=2**63), "bundle: the integer 9223372036854775808 does not fit"),
    (lambda d: d["runs"][0]["params"].update(n={"a": 1}), "runs[0].params.n: expected integer"),
    (lambda d: d["runs"][0]["params"].update(n=0), "runs[0].params.n: --n must be at least 1"),
    (lambda d: d["runs"][0]["params"].update(select="best"), "runs[0].params.select: unknown --select 'best'"),
    (lambda d: d["runs"][0]["params"].update(limit="3"), "runs[0].params.limit: expected integer or null"),
    (lambda d: d["runs"][0].update(wall_seconds=True), "runs[0].wall_seconds: expected number"),
    (lambda d: d["runs"][0].update(seed=1.5), "runs[0].seed: expected integer"),
    (lambda d: d["runs"][0]["problems"][0].update(difficulty="3"), "runs[0].problems[0].difficulty: expected integer"),
    (lambda d: d["runs"][0]["nodes"][1].update(status="exploded"), "runs[0].nodes[1].status: expected one of"),
    (lambda d: d["runs"][0]["nodes"][1].update(depth=5), "runs[0].nodes[1].depth: 5, but the node is 1 steps"),
    (lambda d: d["runs"][0]["results"][0].update(position=2), "runs[0].results[0].position: 2, but problem 'q0'"),
    (lambda d: d["runs"][0]["nodes"][1].update(meta={"deep": {"x": "\ud800"}}),
     "runs[0].nodes[1].meta.deep.x: is not valid Unicode text"),
    (lambda d: d["runs"][0]["nodes"][1].update(text="a\x00b"), "runs[0].nodes[1].text: contains a NUL character"),
    (lambda d: d["runs"][0].update(created_at="yesterday"), "runs[0].created_at: expected ISO date-time string"),
    (lambda d: d.update(runs={}), "runs: expected array"),
])
def test_a_bad_bundle_is_refused_naming_the_first_bad_field_and_changes_nothing(tmp_path, exported, mutate, message):
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    make_run(target, strategy="cot", verifier=None, n=1)  # something already there must stay as it is
    before = counts(target)
    mutate(exported)
    with pytest.raises(UserError) as err:
        bundle.import_bundle(target, _gz(exported))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert counts(target) == before


def test_a_failure_midway_through_an_import_rolls_everything_back(tmp_path, exported):
    target = Store(f"sqlite:///{tmp_path / 'target.db'}")
    second = json.loads(json.dumps(exported["runs"][0]))
    second["id"] = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    # The second run claims problem q0 with another question than the one the first run brings in:
    # the first run is inserted before the conflict is found, and must not survive it.
    exported["runs"].append(second)
    second["problems"][0]["dataset"] = "other"
    for row in second["nodes"] + second["results"]:
        if row["problem_key"] == "q0":
            row["problem_dataset"] = "other"
    target.add(m.Run(id="2c5e28ba-2fa1-11d2-883f-0016d3cca427", strategy="cot"),
               m.Problem(id=77, dataset="other", key="q0", question="A different question"))
    target.add(m.RunProblem(run_id="2c5e28ba-2fa1-11d2-883f-0016d3cca427", position=0, problem_id=77))
    before = counts(target)
    with pytest.raises(UserError, match="stored here with another question or answer"):
        bundle.import_bundle(target, _gz(exported))
    assert counts(target) == before


def test_truncated_gzip_is_refused_clearly(exported):
    data = _gz(exported)
    with pytest.raises(UserError, match="truncated"):
        bundle.read_bundle(data[: len(data) // 2])


def test_not_gzip_and_not_json_are_refused_clearly(exported):
    with pytest.raises(UserError, match="not a gzip file"):
        bundle.read_bundle(json.dumps(exported).encode())
    with pytest.raises(UserError, match="not valid JSON"):
        bundle.read_bundle(gzip.compress(b"{not json"))
    with pytest.raises(UserError, match="not a ThinkTrace bundle"):
        bundle.read_bundle(gzip.compress(b"[1, 2, 3]"))


def test_a_gzip_bomb_is_refused_before_it_is_inflated(monkeypatch):
    # 64 MB of zeros compress to ~64 KB; with a 4 MB limit reading must stop after ~5 chunks.
    bomb = gzip.compress(b"\0" * (64 * 1024**2), compresslevel=1)
    assert len(bomb) < 1024**2
    monkeypatch.setattr(bundle_schema, "MAX_DECOMPRESSED_BYTES", 4 * 1024**2)
    read_sizes = []
    real_read = gzip.GzipFile.read

    def spy(self, size=-1):
        out = real_read(self, size)
        read_sizes.append(len(out))
        return out

    monkeypatch.setattr(gzip.GzipFile, "read", spy)
    with pytest.raises(UserError, match="decompresses to more than 4 MB"):
        bundle.read_bundle(bomb)
    assert sum(read_sizes) <= 5 * 1024**2  # stopped at the limit, never inflated all 64 MB


def test_an_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 2048)
    monkeypatch.setattr(bundle_schema, "MAX_COMPRESSED_BYTES", 1024)
    with pytest.raises(UserError, match="larger than the"):
        bundle.read_bundle(path)


def test_the_cli_refuses_a_bad_bundle_with_exit_code_2_and_one_line(tmp_path, exported):
    bad = tmp_path / "bad.thinktrace.gz"
    exported["runs"][0]["nodes"][12 if len(exported["runs"][0]["nodes"]) > 12 else 1]["seq"] = "twelve"
    bad.write_bytes(_gz(exported))
    proc = cli("import", str(bad), db=tmp_path / "t.db")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: runs[0].nodes[") and lines[0].endswith(".seq: expected integer")
    truncated = tmp_path / "cut.gz"
    truncated.write_bytes(bad.read_bytes()[:100])
    proc = cli("import", str(truncated), db=tmp_path / "t.db")
    assert proc.returncode == 2 and "truncated" in proc.stderr


def test_exporting_an_unknown_run_is_a_user_error(tmp_path):
    proc = cli("export", "0000dead", "-o", str(tmp_path / "x.gz"), db=tmp_path / "t.db")
    assert proc.returncode == 2 and "no run with id" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Hostile and careless bundles (issue 14): each test fails on the code before its fix.

OLD_BUNDLE = ROOT / "tests" / "fixtures" / "thinktrace-0.1.0.thinktrace.gz"
SWEEP_ID = "3f2b6c1e-0d4a-4c8e-9b7a-5e6f7a8b9c0d"


def _file(tmp_path, doc, name="b.thinktrace.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(_gz(doc))
    return path


def _db_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def test_an_imported_run_and_sweep_keep_their_backend_but_never_a_server_address(tmp_path, exported):
    run = exported["runs"][0]
    run["params"].update(backend="openai", backend_options={"base_url": "http://attacker.example/v1", "timeout": 30.0})
    run["sweep"] = {"id": SWEEP_ID, "name": "s", "params": {"backend": "openai", "backend_options": {
        "base_url": "http://attacker.example/v1", "concurrency": 4}}}
    target = Store(f"sqlite:///{tmp_path / 't.db'}")
    bundle.import_bundle(target, _gz(exported))
    with target.session() as session:
        stored, sweep = session.get(m.Run, run["id"]), session.get(m.Sweep, SWEEP_ID)
        assert stored.params["backend"] == "openai" and stored.params["backend_options"] == {"timeout": 30.0}
        assert sweep.params["backend_options"] == {"concurrency": 4}


def test_resuming_an_imported_run_never_sends_the_api_key_to_the_bundles_server(tmp_path, exported):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Listener(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": [{"id": "gpt-x"}]}')

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = exported["runs"][0]
        run["status"], run["results"] = "interrupted", run["results"][:1]
        run["params"].update(backend="openai", model="gpt-x",
                             backend_options={"base_url": f"http://127.0.0.1:{server.server_port}/v1"})
        db = tmp_path / "t.db"
        assert cli("import", str(_file(tmp_path, exported)), db=db).returncode == 0
        env = {**os.environ, "THINKTRACE_DB": str(db), "OPENAI_API_KEY": "sk-secret-of-the-user"}
        subprocess.run([sys.executable, "-m", "reasoning", "resume", run["id"]], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert seen == []


@pytest.mark.parametrize("mutate,message", [
    (lambda nodes: (nodes[1].update(parent_seq=2), nodes[2].update(parent_seq=1)), "2 is not below seq 1"),
    (lambda nodes: nodes[3].update(parent_seq=3), "a node cannot be its own parent (seq 3)"),
    (lambda nodes: nodes[0].update(parent_seq=3), "runs[0].nodes[0].parent_seq: 3 is not below seq 0"),
    (lambda nodes: nodes[4].update(parent_seq=None, depth=0), "node 4 is not reachable from the root (seq 0)"),
])
def test_parent_cycles_and_unreachable_nodes_are_refused(tmp_path, exported, mutate, message):
    target_db = tmp_path / "t.db"
    make_run(Store(f"sqlite:///{target_db}"), strategy="cot", verifier=None, n=1)
    before = _db_bytes(target_db)
    mutate(exported["runs"][0]["nodes"])  # nodes[0..9]: problem q0, seq 0..9 (three chains of three)
    with pytest.raises(UserError, match=re.escape(message)):
        bundle.import_bundle(Store(f"sqlite:///{target_db}"), _gz(exported))
    assert _db_bytes(target_db) == before


def _old_bundle() -> dict:
    return json.loads(gzip.decompress(OLD_BUNDLE.read_bytes()))


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p.update(question="What is 2 + 2?"), "another question or answer than its generator makes"),
    (lambda p: p.update(answer="999"), "another question or answer than its generator makes"),
    (lambda p: p.update(key="s0-01"), "arith:3 has no problem 's0-01'"),
])
def test_a_bundle_cannot_plant_a_built_in_problem(tmp_path, mutate, message):
    doc = _old_bundle()
    problem = doc["runs"][0]["problems"][0]
    old_key = problem["key"]
    mutate(problem)
    for row in doc["runs"][0]["nodes"] + doc["runs"][0]["results"]:
        if row["problem_key"] == old_key:
            row["problem_key"] = problem["key"]
    target = Store(f"sqlite:///{tmp_path / 't.db'}")
    with pytest.raises(UserError, match=message):
        bundle.import_bundle(target, _gz(doc))
    assert counts(target)["Problem"] == 0


def test_local_runs_of_a_built_in_set_use_the_generators_question_and_gold(tmp_path):
    from reasoning.problems import load_problems
    from store.runs import create_run, pending_problems

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    # a wrong copy left by an import before this fix, which no run uses any more
    store.add(m.Problem(dataset="arith:3", key="s0-0", question="What is 2 + 2?", answer="5"))
    problems = load_problems("arith:3", limit=2)
    run_id = create_run(store, m.Run(strategy="cot", dataset="arith:3"), problems)
    assert [(p.question, p.answer) for _, p in pending_problems(store, run_id)] == \
           [(p.question, p.answer) for p in problems]
    # a wrong copy that a run still uses is refused rather than mixed
    other = Store(f"sqlite:///{tmp_path / 'u.db'}")
    other.add(m.Run(id="2c5e28ba-2fa1-11d2-883f-0016d3cca427", strategy="cot"),
              m.Problem(id=5, dataset="arith:3", key="s0-0", question="What is 2 + 2?", answer="5"))
    other.add(m.RunProblem(run_id="2c5e28ba-2fa1-11d2-883f-0016d3cca427", position=0, problem_id=5))
    with pytest.raises(UserError, match="stored here with another question or answer .used by run 2c5e28ba"):
        create_run(other, m.Run(strategy="cot", dataset="arith:3"), problems)


def test_a_problem_with_the_same_key_but_another_gold_answer_is_refused(tmp_path, exported):
    target = Store(f"sqlite:///{tmp_path / 't.db'}")
    bundle.import_bundle(target, _gz(exported))
    again = json.loads(json.dumps(exported))
    again["runs"][0]["id"] = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    again["runs"][0]["problems"][0]["answer"] = "41"
    before = counts(target)
    with pytest.raises(UserError, match="problem 'q0' of dataset 'unit-bundle' is stored here with another"):
        bundle.import_bundle(target, _gz(again))
    assert counts(target) == before


@pytest.mark.parametrize("raw,message", [
    ('"wall_seconds": Infinity', "Infinity is not a number"),
    ('"wall_seconds": NaN', "NaN is not a number"),
    ('"wall_seconds": 1e400', "the number 1e400 is beyond the range of a double"),
    ('"wall_seconds": 9223372036854775808', "the integer 9223372036854775808 does not fit in 64 bits"),
    ('"wall_seconds": ' + "7" * 5000, "does not fit in 64 bits"),
    ('"notes": ' + "[" * 100_000 + "]" * 100_000, "JSON nested deeper than 64 levels"),
])
def test_non_finite_huge_and_deep_numbers_are_one_line_and_exit_2(tmp_path, exported, raw, message):
    from helpers_cli import run_cli

    text = json.dumps(exported).replace('"wall_seconds": ', '"wall_seconds_was": ', 1)
    text = text.replace('"wall_seconds_was": ', raw + ', "wall_seconds_was": ', 1)
    path = tmp_path / "b.gz"
    path.write_bytes(gzip.compress(text.encode()))
    db = tmp_path / "t.db"
    result = run_cli("import", str(path), db=db)
    assert (result.code, len(result.lines)) == (2, 1), result
    assert message in result.lines[0] and "Traceback" not in result.stderr


def test_non_finite_numbers_are_refused_in_a_document_too(tmp_path, exported):
    exported["runs"][0]["results"][0]["wall_seconds"] = float("inf")
    with pytest.raises(UserError, match=r"runs\[0\].results\[0\].wall_seconds: expected a finite number"):
        bundle.import_bundle(Store(f"sqlite:///{tmp_path / 't.db'}"), exported)
    exported["runs"][0]["results"][0]["wall_seconds"] = 1.0
    exported["runs"][0]["nodes"][2]["score"] = float("nan")  # once stored as NULL without a word
    with pytest.raises(UserError, match=r"runs\[0\].nodes\[2\].score: expected a finite number"):
        bundle.import_bundle(Store(f"sqlite:///{tmp_path / 't.db'}"), exported)


def test_importing_a_directory_or_a_device_is_one_line_and_exit_2(tmp_path):
    from helpers_cli import run_cli

    for target, message in ((tmp_path, "it is a directory"), (Path("/dev/null"), "it is not a regular file")):
        result = run_cli("import", str(target), db=tmp_path / "t.db")
        assert (result.code, len(result.lines)) == (2, 1) and message in result.lines[0], result


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r["problems"][0].update(question="x" * (bundle_schema.MAX_QUESTION + 1)),
     "runs[0].problems[0].question: longer than the limit of 100000 characters"),
    (lambda r: r["nodes"][2].update(text="x" * (bundle_schema.MAX_STEP + 1)),
     "runs[0].nodes[2].text: longer than the limit of 200000 characters"),
    (lambda r: r["nodes"][2].update(answer="4" * (bundle_schema.MAX_ANSWER + 1)),
     "runs[0].nodes[2].answer: longer than the limit of 10000 characters"),
    (lambda r: r.update(name="n" * 501), "runs[0].name: longer than the limit of 500 characters"),
    (lambda r: r.update(notes="n" * 100_001), "runs[0].notes: longer than the limit of 100000 characters"),
    (lambda r: r.update(tags=["t"] * 101), "runs[0].tags: more than the limit of 100 items"),
    (lambda r: r["nodes"][1].update(meta={"blob": "x" * 1_000_001}), "runs[0].nodes[1].meta: larger than the limit"),
])
def test_every_text_field_has_a_size_limit(tmp_path, exported, mutate, message):
    mutate(exported["runs"][0])
    with pytest.raises(UserError) as err:
        bundle.import_bundle(Store(f"sqlite:///{tmp_path / 't.db'}"), _gz(exported))
    assert message in str(err.value)


def test_a_gzip_bomb_is_stopped_at_the_limit_holding_one_chunk(tmp_path):
    import tracemalloc
    import zlib

    packer, parts = zlib.compressobj(1, zlib.DEFLATED, 31), []  # wbits 31: a gzip stream
    zeros = b"\0" * 1024**2
    for _ in range(bundle_schema.MAX_DECOMPRESSED_BYTES // len(zeros) + 8):
        parts.append(packer.compress(zeros))
    bomb = b"".join(parts) + packer.flush()
    assert len(bomb) < 2 * 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="decompresses to more than 256 MB"):
            bundle.read_bundle(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(bomb) + 8 * 1024**2  # the file and a few chunks, never the inflated stream


def test_the_old_bundle_still_validates_and_every_limit_is_documented():
    bundle.read_bundle(OLD_BUNDLE)
    doc = (ROOT / "docs" / "formats.md").read_text()
    for name in dir(bundle_schema):
        if name.startswith("MAX_"):
            assert name in doc, f"docs/formats.md does not state {name}"


def test_a_local_problem_that_could_not_travel_in_a_bundle_is_one_user_error(tmp_path):
    from reasoning.types import Problem
    from store.runs import create_run

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    for problem, message in ((Problem("k", "What is \ud800?", "1", "d"), "question: is not valid Unicode text"),
                             (Problem("k", "q", "1", "d", difficulty=2**70), "difficulty: must be at most")):
        with pytest.raises(UserError, match=f"problem 'k' of d: {message}"):
            create_run(store, m.Run(strategy="cot", dataset="d"), [problem])
    assert counts(store)["Run"] == 0

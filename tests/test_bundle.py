"""Bundles: a run leaves one machine as a file and arrives on another identical, once, and a file
from a stranger is refused with one clear line unless it is a sound bundle of this version."""
from __future__ import annotations

import gzip
import json
import os
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
from store import Store, bundle
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
    target.add(m.Problem(dataset="other", key="q0", question="A different question"))
    before = counts(target)
    with pytest.raises(UserError, match="different question"):
        bundle.import_bundle(target, _gz(exported))
    assert counts(target) == before


def test_truncated_gzip_is_refused_clearly(exported):
    data = _gz(exported)
    with pytest.raises(UserError, match="truncated"):
        bundle.read_bundle(data[: len(data) // 2])


def test_not_gzip_and_not_json_are_refused_clearly(exported):
    with pytest.raises(UserError, match="not a gzip file"):
        bundle.read_bundle(json.dumps(exported).encode())
    with pytest.raises(UserError, match="invalid JSON"):
        bundle.read_bundle(gzip.compress(b"{not json"))
    with pytest.raises(UserError, match="not a ThinkTrace bundle"):
        bundle.read_bundle(gzip.compress(b"[1, 2, 3]"))


def test_a_gzip_bomb_is_refused_before_it_is_inflated(monkeypatch):
    # 64 MB of zeros compress to ~64 KB; with a 4 MB limit reading must stop after ~5 chunks.
    bomb = gzip.compress(b"\0" * (64 * 1024**2), compresslevel=1)
    assert len(bomb) < 1024**2
    monkeypatch.setattr(bundle, "MAX_DECOMPRESSED_BYTES", 4 * 1024**2)
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
    monkeypatch.setattr(bundle, "MAX_COMPRESSED_BYTES", 1024)
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

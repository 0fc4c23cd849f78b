"""The CLI as people script against it: bad input is one line on stderr, exit code 2, no traceback,
and nothing written to the database."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, db: Path | None = None, env=None, timeout=120):
    full_env = {**os.environ, "THINKTRACE_THREADS": os.environ.get("THINKTRACE_THREADS", "1"), **(env or {})}
    if db is not None:
        full_env["THINKTRACE_DB"] = str(db)
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(proc, fragment: str):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert any(fragment in line for line in lines), proc.stderr
    return lines


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["run", "--strategy", "tree_of_thoughts"], "unknown strategy 'tree_of_thoughts'"),
        (["run", "--strategy", "cot", "--verifier", "crystal_ball"], "unknown verifier 'crystal_ball'"),
        (["run", "--strategy", "self_consistency", "--n", "0"], "--n must be at least 1"),
        (["run", "--strategy", "best_of_n", "--model", "smollm2"], "needs a verifier"),
        (["run", "--strategy", "cot", "--dataset", "missing.jsonl"], "missing.jsonl"),
        (["run", "--strategy", "cot", "--dataset", "arith:9"], "difficulty 9 is out of range"),
        (["run", "--strategy", "cot", "--limit", "0"], "--limit must be at least 1"),
        (["run", "--strategy", "cot", "--select", "best"], "unknown --select"),
        (["show", "0000dead"], "no run with id"),
        (["resume", "0000dead"], "no run with id"),
    ],
)
def test_bad_input_is_one_clear_line_with_exit_code_2_and_writes_nothing(tmp_path, args, fragment):
    db = tmp_path / "t.db"
    proc = cli(*args, db=db)
    assert_user_error(proc, fragment)
    if args[0] == "run":
        assert not db.exists()


def test_a_malformed_dataset_line_is_reported_with_its_number(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "1+1?", "answer": "#### 2"}\n{not json\n')
    proc = cli("run", "--strategy", "cot", "--dataset", str(data), db=tmp_path / "t.db")
    assert_user_error(proc, "line 2")
    assert not (tmp_path / "t.db").exists()


def test_an_empty_dataset_is_refused(tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n")
    assert_user_error(cli("run", "--strategy", "cot", "--dataset", str(data), db=tmp_path / "t.db"), "empty")


def test_an_unwritable_database_path_is_refused(tmp_path):
    proc = cli("run", "--strategy", "cot", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert_user_error(proc, "does not exist")


def test_a_database_from_a_newer_schema_is_refused(tmp_path):
    import sqlite3

    db = tmp_path / "newer.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    conn.commit()
    conn.close()
    assert_user_error(cli("run", "--strategy", "cot", db=db), "newer than this ThinkTrace")
    assert_user_error(cli("runs", db=db), "newer than this ThinkTrace")


def test_an_unknown_model_is_refused_before_any_run_is_created(tmp_path):
    db = tmp_path / "t.db"
    proc = cli("run", "--strategy", "cot", "--model", str(tmp_path / "no-model-here"), "--limit", "1", db=db,
               env={"HF_HUB_OFFLINE": "1"})
    assert_user_error(proc, "no-model-here")
    if db.exists():
        listing = cli("runs", "--json", db=db)
        assert json.loads(listing.stdout) == []


def test_runs_on_an_empty_database_says_what_to_do(tmp_path):
    proc = cli("runs", db=tmp_path / "t.db")
    assert proc.returncode == 0 and "no runs yet" in proc.stdout
    assert json.loads(cli("runs", "--json", db=tmp_path / "t.db").stdout) == []


def test_usage_errors_exit_2():
    proc = cli("run", "--n", "notanumber", "--strategy", "cot")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_the_default_model_is_the_lab_reasoner_with_its_prm_where_a_verifier_is_needed(tmp_path):
    db = tmp_path / "t.db"
    proc = cli("run", "--strategy", "best_of_n", "--dataset", "arith:3", "--limit", "2", "--n", "4", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    shown = json.loads(cli("show", run["id"], "--json", db=db).stdout)
    assert shown["model"].startswith("ThinkTrace lab reasoner") and shown["verifier"] == "prm:lab" and shown["problems_done"] == 2
    proc = cli("run", "--strategy", "self_consistency", "--dataset", "arith:1", "--limit", "1", "--n", "2",
               "--json", db=db)  # a strategy that needs no verifier gets none
    assert proc.returncode == 0, proc.stderr
    assert json.loads(cli("show", json.loads(proc.stdout)["id"], "--json", db=db).stdout)["verifier"] is None


def test_a_question_without_a_gold_answer_runs_ungraded_and_curves_say_why_they_cannot(tmp_path):
    db = tmp_path / "t.db"
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps({"question": "Tom has 12 apples and buys 5 more. How many apples does Tom have now?",
                               "answer": None}) + "\n")
    refused = cli("run", "--strategy", "best_of_n", "--verifier", "oracle", "--dataset", str(own), db=db)
    assert_user_error(refused, "the oracle verifier needs gold answers")
    proc = cli("run", "--strategy", "best_of_n", "--n", "4", "--dataset", str(own), "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["id"]
    shown = json.loads(cli("show", run_id, "--json", db=db).stdout)
    assert shown["status"] == "done" and shown["problems_done"] == 1 and shown["accuracy"] is None
    [result] = shown["results"]
    assert result["gold"] is None and result["correct"] is None and result["answer"] is not None
    assert_user_error(cli("curves", run_id, db=db), "gold")
    report = cli("report", run_id, "--output", str(tmp_path / "r.html"), db=db)
    assert report.returncode == 0, report.stderr
    assert "gold <b>none (not graded)</b>" in (tmp_path / "r.html").read_text()

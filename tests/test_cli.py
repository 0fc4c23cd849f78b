"""The CLI as people script against it: bad input is one line on stderr, exit code 2, no traceback,
and nothing written to the database."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


# --- hostile and careless input (issue 14) --------------------------------------------------------

def assert_one_line_error(proc, fragment: str):
    lines = assert_user_error(proc, fragment)
    assert len(lines) == 1, proc.stderr


@pytest.mark.parametrize("args,fragment", [
    (["--seed", str(2**64)], "--seed': 18446744073709551616 is out of range"),
    (["--limit", "9" * 5000], "--limit' / '-k': 99999"),
    (["--n", "9" * 5000], "--n': 99999"),
    (["--temperature", "nan"], "must be a finite number (got nan)"),
    (["--top-p", "inf"], "must be a finite number (got inf)"),
    (["--temperature", "1e400"], "must be a finite number (got 1e400)"),
    (["--backend", "vllm", "--gpu-memory-utilization", "nan"], "must be a finite number (got nan)"),
    (["--backend", "openai", "--model-params", "1e400"], "must be a finite number (got 1e400)"),
])
def test_numbers_that_are_not_finite_or_do_not_fit_64_bits_are_one_line_before_anything_runs(tmp_path, args, fragment):
    db = tmp_path / "t.db"
    assert_one_line_error(cli("run", "--strategy", "self_consistency", *args, db=db), fragment)
    assert not db.exists()


def test_a_sweep_budget_beyond_64_bits_is_one_line(tmp_path):
    proc = cli("sweep", "--strategies", "cot", "--budgets", "1," + "9" * 20, db=tmp_path / "t.db")
    assert_one_line_error(proc, "--budgets must be whole numbers")
    assert not (tmp_path / "t.db").exists()


DATASETS = {
    "level": '{"question": "1+1?", "answer": "2", "level": 99999999999999999999}',
    "nan": '{"question": "1+1?", "answer": NaN}',
    "deep": '{"question": "1+1?", "answer": "2", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "list": '{"question": "1+1?", "answer": [4]}',
}


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("case", sorted(DATASETS))
def test_a_hostile_dataset_is_one_line_before_the_model_loads(tmp_path, command, case):
    data = tmp_path / "data.jsonl"
    data.write_text(DATASETS[case] + "\n")
    db = tmp_path / "t.db"
    args = ["--strategy", "cot"] if command == "run" else ["--strategies", "cot", "--budgets", "1"]
    # The model could not load either: the dataset error coming first shows the order of checks.
    proc = cli(command, *args, "--dataset", str(data), "--model", str(tmp_path / "no-model"), db=db)
    assert_one_line_error(proc, "data.jsonl line 1:")
    assert not db.exists()


def test_huge_arith_levels_are_refused_before_the_model_loads(tmp_path):
    for spec in ("arith:99999999999", "arith:1-" + "9" * 5000):
        proc = cli("run", "--strategy", "cot", "--dataset", spec, "--model", str(tmp_path / "no-model"), db=tmp_path / "t.db")
        assert_one_line_error(proc, "is out of range 1..5")
    assert not (tmp_path / "t.db").exists()


def _wait_for_a_finished_problem(db: Path, proc, timeout: float = 120.0):
    from store import Store
    from store.runs import list_runs

    store, deadline = Store(f"sqlite:///{db}"), time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list_runs(store) if db.exists() else []
        if runs and runs[0].problems_done >= 1:
            return store
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no problem finished: {proc.communicate()[1][-2000:]}")


@pytest.mark.parametrize("command,signum,code", [
    ("run", signal.SIGINT, 130), ("run", signal.SIGTERM, 143), ("sweep", signal.SIGINT, 130),
])
def test_ctrl_c_and_sigterm_exit_130_and_143_and_leave_the_run_interrupted(tmp_path, command, signum, code):
    from store.runs import list_runs

    db = tmp_path / "t.db"
    args = (["run", "--strategy", "cot"] if command == "run" else ["sweep", "--strategies", "cot", "--budgets", "1"])
    proc = subprocess.Popen([sys.executable, "-m", "reasoning", *args, "--dataset", "arith:1-5", "--limit", "500"],
                            cwd=ROOT, env={**os.environ, "THINKTRACE_THREADS": "1", "THINKTRACE_DB": str(db)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = _wait_for_a_finished_problem(db, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and ("resume" in err.strip().splitlines()[-1])
    [run] = list_runs(store)
    assert run.status == "interrupted" and 1 <= run.problems_done < 500


def _strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_even_for_a_row_holding_infinity(tmp_path):
    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from sqlmodel import select

    from reasoning.types import Problem
    from store import Store
    from store import models as m
    from thinktrace import runner

    db = tmp_path / "t.db"
    store = Store(f"sqlite:///{db}")
    lm = ScriptedLM(["Add 2 and 2: 2 + 2 = 4.\n\nThe answer is 4."])
    request = runner.RunRequest(strategy="self_consistency", dataset="unit", model="scripted",
                                config=SearchConfig(n=2)).validate()
    problems = [Problem(key="p", question="What is 2 + 2?", answer="4", dataset="unit")]
    run_id = runner.create_run(store, request, problems, lm, None)
    runner.execute(store, run_id, lm, None)
    with store.session() as session:  # as a bundle from before inputs were checked could leave it
        session.get(m.Run, run_id).wall_seconds = float("inf")
        for result in session.exec(select(m.Result)).all():
            result.wall_seconds = float("-inf")
    listed = cli("runs", "--json", db=db)
    assert listed.returncode == 0, listed.stderr
    assert _strict(listed.stdout)[0]["wall_seconds"] is None
    shown = cli("show", run_id, "--json", db=db)
    assert shown.returncode == 0, shown.stderr
    assert _strict(shown.stdout)["wall_seconds"] is None
    curves = cli("curves", run_id, "--json", db=db)
    assert curves.returncode == 0, curves.stderr
    assert _strict(curves.stdout)


def test_a_run_id_prefix_is_matched_literally_not_as_a_like_pattern(tmp_path):
    db = tmp_path / "t.db"
    assert cli("run", "--strategy", "cot", "--limit", "1", db=db).returncode == 0
    for pattern in ("%", "_", "________", "%-%"):
        assert_one_line_error(cli("show", pattern, db=db), "no run with id")
        assert_one_line_error(cli("resume", pattern, db=db), "no run with id")
        assert_one_line_error(cli("curves", pattern, db=db), "no run or sweep with id")


@pytest.mark.parametrize("source", ["thinktrace", "search-and-learn", "llm-reasoners"])
def test_importing_a_folder_is_one_line(tmp_path, source):
    db = tmp_path / "t.db"
    assert_one_line_error(cli("import", str(tmp_path), "--from", source, db=db), "is a directory")
    assert not db.exists()

"""The benchmarks shipped in reasoning/data/ (GSM8K's test set, MATH-500): counts, stable keys, level
and subject facets, subsets and their errors, every gold answer through the grader, bundles; hf:
with the real `datasets` package, offline; a run on a MATH-500 subset end to end."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers_cli import run_cli

from reasoning.answers import extract_answer, is_equiv
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.problems import SHIPPED, builtin_problem, load_problems

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "reasoning" / "data"


def source_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress((DATA / SHIPPED[name].file).read_bytes()).splitlines()]


# --- the files: the source bytes, with their licenses ------------------------------------------

@pytest.mark.parametrize("name, sha256", [
    ("gsm8k", "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"),  # grade-school-math test.jsonl
    ("math500", "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132"),  # prm800k's LFS oid
])
def test_each_shipped_file_is_the_source_byte_for_byte_small_and_licensed(name, sha256):
    packed = (DATA / SHIPPED[name].file).read_bytes()
    assert hashlib.sha256(gzip.decompress(packed)).hexdigest() == sha256
    assert len(packed) < 1_000_000
    assert (DATA / f"LICENSE.{name}").read_text().startswith("MIT License")
    assert SHIPPED[name].file in (DATA / "README.md").read_text()


# --- counts, keys, facets -----------------------------------------------------------------------

def test_gsm8k_is_the_1319_problem_test_set_keyed_by_its_source_line():
    problems = load_problems("gsm8k")
    assert len(problems) == 1319
    assert [p.key for p in problems] == [f"gsm8k-test-{i}" for i in range(1319)]
    first = problems[0]
    assert (first.dataset, first.answer, first.difficulty) == ("gsm8k", "18", None)
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.meta["solution"].endswith("$<<9*2=18>>18 every day at the farmer\u2019s market.")
    assert problems[-1].answer == source_rows("gsm8k")[-1]["answer"].rsplit("####", 1)[1].strip()


def test_math500_is_500_problems_keyed_by_unique_id_with_level_as_difficulty_and_subject_in_meta():
    problems = load_problems("math500")
    assert len(problems) == 500
    assert [p.key for p in problems] == [row["unique_id"] for row in source_rows("math500")]
    assert len({p.key for p in problems}) == 500
    first = problems[0]
    assert (first.key, first.dataset, first.answer, first.difficulty) == (
        "test/precalculus/807.json", "math500", "\\left( 3, \\frac{\\pi}{2} \\right)", 2)
    assert (first.meta["level"], first.meta["subject"]) == (2, "Precalculus")
    assert "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}" in first.meta["solution"]
    assert Counter(p.difficulty for p in problems) == {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
    assert all(p.difficulty == p.meta["level"] for p in problems)
    assert Counter(p.meta["subject"] for p in problems) == {
        "Algebra": 124, "Intermediate Algebra": 97, "Prealgebra": 82, "Number Theory": 62, "Precalculus": 56,
        "Geometry": 41, "Counting & Probability": 38}


def test_limit_takes_the_first_problems_in_source_order_and_seed_changes_nothing():
    assert load_problems("math500", limit=3, seed=7) == load_problems("math500")[:3]
    assert load_problems("gsm8k", limit=2, seed=1) == load_problems("gsm8k", limit=2)


def test_a_caller_changing_a_problem_does_not_change_the_next_load():
    load_problems("math500", limit=1)[0].meta["level"] = 99
    assert load_problems("math500", limit=1)[0].meta["level"] == 2


# --- subsets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, count, check", [
    ("math500:level=5", 134, lambda p: p.difficulty == 5),
    ("math500:level=1", 43, lambda p: p.difficulty == 1),
    ("math500:level=4-5", 262, lambda p: p.difficulty in (4, 5)),
    ("math500:level=1,level=2", 133, lambda p: p.difficulty in (1, 2)),
    ("math500:subject=Algebra", 124, lambda p: p.meta["subject"] == "Algebra"),
    ("math500:subject=intermediate_algebra", 97, lambda p: p.meta["subject"] == "Intermediate Algebra"),
    ("math500:subject=Counting & Probability", 38, lambda p: p.meta["subject"] == "Counting & Probability"),
    ("math500:subject=counting-and-probability", 38, lambda p: p.meta["subject"] == "Counting & Probability"),
    ("math500:level=5,subject=Algebra", 30, lambda p: p.difficulty == 5 and p.meta["subject"] == "Algebra"),
    ("math500:subject=Geometry,subject=Algebra", 165, lambda p: p.meta["subject"] in ("Geometry", "Algebra")),
])
def test_subsets_select_by_level_and_subject_in_source_order(spec, count, check):
    problems = load_problems(spec)
    assert len(problems) == count and all(check(p) for p in problems)
    assert [p.key for p in problems] == [p.key for p in load_problems("math500") if check(p)]
    assert {p.dataset for p in problems} == {"math500"}  # one stored problem whichever subset picked it
    assert load_problems(spec, limit=2) == problems[:2]


@pytest.mark.parametrize("spec, message", [
    ("math500:level=9", "bad problem set 'math500:level=9': level 9 is out of range 1..5"),
    ("math500:level=0", "level 0 is out of range 1..5"),
    ("math500:level=5-3", "level 5-3 is out of range 1..5"),
    ("math500:level=hard", "level hard is out of range 1..5"),
    ("math500:level=" + "9" * 5000, "level 99999999999999999999... is out of range 1..5"),
    ("math500:difficulty=3", "unknown field 'difficulty' (use level or subject)"),
    ("math500:subject=Chemistry", "no subject 'Chemistry' in math500 (one of: Algebra, Counting & Probability"),
    ("math500:level", "expected math500:FIELD=VALUE"),
    ("math500:", "expected math500:FIELD=VALUE"),
    ("math500:level=5,", "expected math500:FIELD=VALUE"),
    ("gsm8k:level=1", "gsm8k has no subsets, use gsm8k"),
    ("gsm8k-train", "unknown problem set 'gsm8k-train'"),
])
def test_bad_subsets_are_one_short_line(spec, message):
    with pytest.raises(UserError, match=re.escape(message)) as error:
        load_problems(spec)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


@pytest.mark.parametrize("spec, fragment", [
    ("math500:level=9", "level 9 is out of range 1..5"),
    ("math500:topic=Algebra", "unknown field 'topic'"),
])
def test_the_cli_refuses_a_bad_subset_with_exit_2_one_line_and_no_database(tmp_path, spec, fragment):
    db = tmp_path / "t.db"
    result = run_cli("run", "--strategy", "cot", "--dataset", spec, db=db)
    assert result.code == 2
    assert len(result.lines) == 1 and fragment in result.lines[0]
    assert not db.exists()


# --- grading: every shipped gold, GSM8K's "#### N" ----------------------------------------------

def test_every_gsm8k_gold_parses_to_a_plain_number_its_own_marker_and_a_stated_answer_agree():
    problems = load_problems("gsm8k")
    for problem, row in zip(problems, source_rows("gsm8k"), strict=True):
        written = row["answer"].rsplit("####", 1)[1].strip()  # as the source writes it: "1,450,000"
        assert re.fullmatch(r"-?\d+(\.\d+)?", problem.answer), problem.key
        assert is_equiv(problem.answer, problem.answer)
        assert is_equiv(extract_answer(row["answer"]).value, problem.answer), problem.key  # "... #### N"
        assert is_equiv(extract_answer(f"The answer is {written}.").value, problem.answer), problem.key
    assert sum("," in row["answer"].rsplit("####", 1)[1] for row in source_rows("gsm8k")) == 14


def test_every_math500_gold_is_equivalent_to_itself_boxed_and_to_its_solutions_box():
    for problem in load_problems("math500"):
        assert is_equiv(problem.answer, problem.answer), problem.key
        boxed = extract_answer(f"So the answer is $\\boxed{{{problem.answer}}}$.")
        assert boxed.method == "boxed" and is_equiv(boxed.value, problem.answer), problem.key
        assert is_equiv(extract_answer(problem.meta["solution"], allow_fallback=False).value, problem.answer), problem.key


def test_a_gsm8k_gold_with_commas_grades_plain_commas_and_decimals_right(tmp_path):
    index = next(i for i, row in enumerate(source_rows("gsm8k")) if row["answer"].endswith("#### 1,450,000"))
    problem = builtin_problem("gsm8k", f"gsm8k-test-{index}")
    assert problem.answer == "1450000"
    for said in ["1450000", "1,450,000", "1,450,000.00", "$1,450,000", "1450000.0"]:
        assert is_equiv(said, problem.answer), said
    for text in ["The answer is 1,450,000.00.", "#### 1,450,000", "so the total is \\boxed{1,450,000}"]:
        assert is_equiv(extract_answer(text).value, problem.answer), text
    assert not is_equiv("1,450,001", problem.answer)
    path = tmp_path / "decimal.jsonl"  # a gold with commas and decimals, in a file of the same shape
    path.write_text(json.dumps({"question": "q", "answer": "x\n#### 1,234.50"}) + "\n")
    [decimal] = load_problems(str(path))
    assert decimal.answer == "1234.50"
    assert is_equiv("1234.5", decimal.answer) and is_equiv("1,234.50", decimal.answer)
    assert not is_equiv("1234", decimal.answer)


# --- built-in content: bundles cannot plant another question under a shipped key -----------------

def test_builtin_problem_is_the_shipped_row_and_unknown_keys_or_subset_datasets_are_refused():
    assert builtin_problem("math500", "test/algebra/2584.json").answer == "\\frac{14}{3}"
    assert builtin_problem("gsm8k", "gsm8k-test-0").answer == "18"
    with pytest.raises(UserError, match="math500 has no problem 'test/algebra/0.json'"):
        builtin_problem("math500", "test/algebra/0.json")
    with pytest.raises(UserError, match="problems of math500 are stored under the dataset 'math500'"):
        builtin_problem("math500:level=5", "test/algebra/2584.json")
    assert builtin_problem("math500#abcd1234", "1") is None  # a file called math500.jsonl is no built-in set


def test_a_math500_run_survives_a_bundle_round_trip_and_a_changed_question_is_refused(tmp_path):
    from store import Store, bundle
    from thinktrace import runner

    source = Store(f"sqlite:///{tmp_path / 'a.db'}")
    problems = load_problems("math500:level=1", limit=2)
    lm = ScriptedLM(["Step one.\n\nThe answer is 42."])
    request = runner.RunRequest(strategy="cot", dataset="math500:level=1", model="scripted", verifier=None,
                                config=SearchConfig()).validate()
    run_id = runner.create_run(source, request, problems, lm, None)
    runner.execute(source, run_id, lm, None)
    doc = bundle.export_runs(source, [run_id])
    assert [p["dataset"] for p in doc["runs"][0]["problems"]] == ["math500", "math500"]
    assert bundle.import_bundle(Store(f"sqlite:///{tmp_path / 'b.db'}"), doc).imported == [run_id]
    doc["runs"][0]["problems"][0]["question"] = "What is 2 + 2?"
    with pytest.raises(UserError, match="another question or answer than the shipped benchmark has"):
        bundle.import_bundle(Store(f"sqlite:///{tmp_path / 'c.db'}"), doc)


# --- hf: the real `datasets` package, offline ---------------------------------------------------

def _offline(tmp_path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "THINKTRACE_DB": str(tmp_path / "t.db")}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_hf_loads_a_local_dataset_through_the_datasets_package(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "test.jsonl").write_text(json.dumps({"question": "What is 3 * 4?", "answer": "3 * 4 = 12\n#### 12"}) + "\n")
    proc = _offline(tmp_path, "from reasoning.problems import load_problems\n"
                              f"print([(p.key, p.answer) for p in load_problems('hf:{folder}')])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[('0', '12')]"


def test_hf_on_a_dataset_neither_reachable_nor_cached_fails_in_one_line_with_exit_2(tmp_path):
    proc = _offline(tmp_path, "import sys\nfrom thinktrace.cli import main\n"
                              "sys.argv = ['reasoning', 'run', '--strategy', 'cot', '--dataset', 'hf:nobody/not-cached']\n"
                              "main()")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "hf:nobody/not-cached: cannot load the dataset (hub unreachable and not cached" in lines[0]
    assert not (tmp_path / "t.db").exists()


# --- end to end on the lab model ----------------------------------------------------------------

def test_a_cot_run_on_a_math500_level_subset_runs_and_stores_its_problems(tmp_path):
    db = tmp_path / "t.db"
    result = run_cli("run", "--strategy", "cot", "--dataset", "math500:level=1", "--limit", "2", "--json", db=db)
    assert result.code == 0, result.stderr
    [run] = json.loads(run_cli("runs", "--json", db=db).stdout)
    assert (run["dataset"], run["status"], run["problems_done"], run["graded"]) == ("math500:level=1", "done", 2, 2)
    shown = json.loads(run_cli("show", run["id"], "--json", db=db).stdout)
    expected = load_problems("math500:level=1", limit=2)
    assert [(r["key"], r["gold"], r["difficulty"]) for r in shown["results"]] == \
           [(p.key, p.answer, 1) for p in expected]

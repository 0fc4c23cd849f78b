"""Is the difference between two runs real? The paired test (exact McNemar + paired bootstrap CI) on
textbook numbers, through `compare A B` on two runs of known outcomes, and on the Compare page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from helpers_cli import run_cli
from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.estimators import paired_test
from reasoning.types import Problem
from store import Store
from thinktrace import runner


def test_exact_mcnemar_gives_the_textbook_p_value():
    # 12 discordant problems, 10 solved by A only and 2 by B only: p = 2 * P(X <= 2), X ~ Bin(12, 1/2)
    a = [True] * 10 + [False] * 2 + [True] * 30 + [False] * 8
    b = [False] * 10 + [True] * 2 + [True] * 30 + [False] * 8
    test = paired_test(a, b)
    assert (test.n, test.a_only, test.b_only) == (50, 10, 2)
    assert test.p_value == pytest.approx(2 * (1 + 12 + 66) / 4096)  # 0.03857
    assert test.difference == pytest.approx(8 / 50) and test.significant
    assert test.ci_low < 8 / 50 < test.ci_high and test.ci_low > 0
    same = paired_test([True, False] * 10, [True, False] * 10)
    assert same.p_value == 1.0 and not same.significant and "not significant" in same.sentence()
    close = paired_test([True, False, True], [False, True, True])  # 1 vs 1 discordant
    assert close.p_value == 1.0
    with pytest.raises(ValueError):
        paired_test([True], [True, False])


PROBLEMS = [Problem(key=f"p{i}", question=f"What is {i} + 0?", answer=str(i), dataset="unit-paired") for i in range(30)]


def make_run(store: Store, right: set[int], name: str) -> str:
    """A cot run right exactly on the problems in `right`."""
    def answer(prompt, sample, call):
        i = next(p for p in PROBLEMS if p.question in prompt)
        value = int(i.answer) + (0 if int(i.answer) in right else 1)
        return f"So.\n\nThe answer is {value}."

    lm = ScriptedLM(answer)
    request = runner.RunRequest(strategy="cot", dataset="unit-paired", model="scripted", name=name,
                                config=SearchConfig()).validate()
    run_id = runner.create_run(store, request, PROBLEMS, lm, None)
    runner.execute(store, run_id, lm, None)
    return run_id


@pytest.fixture()
def two_runs(tmp_path):
    db = tmp_path / "t.db"
    store = Store(f"sqlite:///{db}")
    a = make_run(store, set(range(0, 20)), "A")  # right on 0-19
    b = make_run(store, set(range(8, 28)), "B")  # right on 8-27: A only 8, B only 8
    c = make_run(store, set(range(0, 2)), "C")  # right on 0-1
    return db, a, b, c


def test_compare_says_whether_two_runs_differ(two_runs):
    db, a, b, c = two_runs
    result = run_cli("compare", a[:8], b[:8], "--json", db=db)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["n"], out["a_only"], out["b_only"], out["difference"]) == (30, 8, 8, 0.0)
    assert out["p_value"] == 1.0 and out["significant"] is False
    out = json.loads(run_cli("compare", a, c, "--json", db=db).stdout)  # 18 vs 0 discordant
    assert out["a_only"] == 18 and out["p_value"] == pytest.approx(2 / 2 ** 18) and out["significant"]
    text = run_cli("compare", a, c, db=db).stdout
    assert "significant at 0.05" in text and "not significant" not in text
    same = run_cli("compare", a, a, db=db)
    assert same.code == 2 and "two different runs" in same.stderr


def test_the_compare_page_says_it_plainly(two_runs, monkeypatch):
    db, a, b, _ = two_runs
    monkeypatch.setenv("THINKTRACE_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "compare.py"), default_timeout=60)
    at.query_params["runs"] = f"{a},{b}"
    at.run()
    assert not at.exception and not at.error
    [said] = [i.value for i in at.info if "McNemar" in i.value]
    assert "not significant" in said and "8 by" in said

"""What test-time training buys, from stored runs (thinktrace/ttt.py, store/ttt.py) and on the Budget
page: accuracy against TTT steps, and the vote over the first k augmented predictions recounted from
the stored prediction nodes (at k = n, the run's own answers)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from reasoning.errors import UserError
from store import Store
from store.runs import run_results
from thinktrace.ttt import load_ttt, vote_of_first
from ttt_fixtures import ttt_run

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "budget.py")


def test_vote_of_the_first_k_predictions():
    preds = [("1\n", False), (None, None), ("2\n", True), ("2\n", True), ("1\n", False)]
    assert vote_of_first(preds, 1) is False
    assert vote_of_first(preds, 3) is False  # 1 vote each: the earlier prediction wins the tie
    assert vote_of_first(preds, 4) is True
    assert vote_of_first(preds, 5) is False  # 2 votes against 2: the tie goes to the earlier answer, "1"
    assert vote_of_first([(None, None)], 1) is False and vote_of_first([], 3) is False


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("ttt-budget") / "thinktrace.db"
    store = Store(f"sqlite:///{path}")
    ids = {(steps, n): ttt_run(store, steps, n) for steps, n in [(0, 1), (0, 8), (8, 1), (8, 8)]}
    return path, store, ids


def test_accuracy_against_steps_and_predictions(runs):
    _, store, ids = runs
    curves = load_ttt(store, list(ids.values()), n_boot=200)
    assert curves.n_problems == 6 and not curves.notes
    accuracy = {rid: sum(r.correct for r in run_results(store, rid)) / 6 for rid in ids.values()}
    by_steps = {(p.curve, p.x): p for p in curves.by_steps}
    assert set(by_steps) == {("one prediction", 0), ("one prediction", 8), ("vote over 8 augmented predictions", 0),
                             ("vote over 8 augmented predictions", 8)}
    for (steps, n), rid in ids.items():
        point = by_steps[("one prediction" if n == 1 else "vote over 8 augmented predictions", steps)]
        assert point.accuracy == pytest.approx(accuracy[rid]) and point.runs == (rid,)
        assert point.ci_low <= point.accuracy <= point.ci_high
    # one curve per voting run, k = 1..8; at k = n the vote is the run's own answer, at k = 1 the identity prediction
    by_run = {}
    for p in curves.by_predictions:
        by_run.setdefault(p.runs[0], []).append(p)
    assert set(by_run) == {ids[(0, 8)], ids[(8, 8)]}
    for steps in (0, 8):
        points = sorted(by_run[ids[(steps, 8)]], key=lambda p: p.x)
        assert [p.x for p in points] == list(range(1, 9))
        assert points[-1].accuracy == pytest.approx(accuracy[ids[(steps, 8)]])
        assert points[0].accuracy == pytest.approx(accuracy[ids[(steps, 1)]])  # the n=1 run predicts the identity
    assert {p.curve for p in curves.by_predictions} == {"in context (0 steps)", "8 TTT steps"}


def test_no_ttt_runs_is_none_and_one_step_count_says_what_to_add(runs):
    _, store, ids = runs
    assert load_ttt(store, []) is None
    curves = load_ttt(store, [ids[(8, 1)], ids[(8, 8)]], n_boot=50)
    assert curves.notes and "--ttt-steps" in curves.notes[0]


def test_runs_on_other_tasks_are_one_clear_error(runs, tmp_path):
    _, store, ids = runs
    other = ttt_run(store, 0, 1, limit=6)
    with store.session() as session:  # the other run finished nothing: no shared problem
        from sqlmodel import delete

        from store import models as m

        session.exec(delete(m.Result).where(m.Result.run_id == other))
    with pytest.raises(UserError, match="share no graded problem"):
        load_ttt(store, [ids[(0, 1)], other])


def test_the_budget_page_draws_both_views(runs, monkeypatch):
    path, _, ids = runs
    monkeypatch.setenv("THINKTRACE_DB", str(path))
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.query_params["runs"] = ",".join(ids.values())
    at.run()
    assert not at.exception and not at.error
    assert "Test-time training" in [s.value for s in at.subheader]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    charts = {s["layout"].get("title", {}).get("text"): s for s in specs}
    steps = charts["Accuracy against TTT steps"]
    assert {t["name"] for t in steps["data"]} == {"one prediction", "vote over 8 augmented predictions"}
    assert all(t["x"] == [0, 8] for t in steps["data"])
    predictions = charts["Accuracy against augmented predictions"]
    assert {t["name"] for t in predictions["data"]} == {"in context (0 steps)", "8 TTT steps"}
    assert all(t["x"] == list(range(1, 9)) for t in predictions["data"])


def test_the_budget_page_has_no_ttt_section_without_ttt_runs(tmp_path, monkeypatch):
    from tests.test_bundle import make_run

    path = tmp_path / "thinktrace.db"
    monkeypatch.setenv("THINKTRACE_DB", str(path))
    make_run(Store(f"sqlite:///{path}"), n=2)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and "Test-time training" not in [s.value for s in at.subheader]

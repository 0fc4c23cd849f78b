"""Tasks with demonstrations on the pages and in the report: grids drawn as coloured cells wherever a
task, an answer or a step is shown (Tree, Run, Compare, the HTML report), and a ttt tree's training
curve and vote on the Tree page. Runs from a scripted model (tests/ttt_fixtures.py), no weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import Store
from store.runs import run_problems
from tests.test_app import empty_db, open_page, plain, texts  # noqa: F401 (empty_db: a fixture)
from ttt_fixtures import ttt_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    path = tmp_path_factory.mktemp("task-pages") / "thinktrace.db"
    store = Store(f"sqlite:///{path}")
    return store, {"trained": ttt_run(store, 8, 8, limit=3), "in_context": ttt_run(store, 0, 8, limit=3)}


@pytest.fixture()
def db(tasks, monkeypatch):
    store, ids = tasks
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    return store, ids


def html_bodies(at) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def test_the_tree_page_draws_the_task_the_training_curve_and_the_vote(db):
    store, ids = db
    problem = run_problems(store, ids["trained"])[0]
    at = open_page("pages/tree.py", run=ids["trained"], problem=1)
    assert not at.error
    bodies = html_bodies(at)
    task = next(b for b in bodies if 'class="tt-task"' in b)
    demos = len(problem.meta["demos"])
    assert task.count('class="tt-grid"') == 2 * demos + 3 and task.count("demo ") == demos  # demos, test input, gold, answer
    gold_row = problem.gold.strip()
    assert f'aria-label="grid 1x{len(gold_row)}: {gold_row}"' in task
    assert "input:" not in task  # the raw text is folded away, not shown as the question
    assert f"vs gold **{gold_row}**" in plain(texts(at))
    # the training curve (root meta ttt.losses) and the vote over the mapped-back answers
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [s["layout"].get("title", {}).get("text") for s in specs]
    loss = specs[titles.index("Test-time training: loss per step")]
    assert loss["data"][0]["y"] == [round(2.0 * 0.8 ** i, 5) for i in range(8)]
    vote = specs[titles.index("Vote over the augmented predictions")]
    assert sum(vote["data"][0]["x"]) <= 8
    table = next(b for b in bodies if 'class="tt-predictions"' in b)
    assert table.count("<tr>") == 9 and "identity" in table and "flip_h" in table
    assert "ARC's two attempts" in texts(at) and "Votes" not in [m.value for m in at.markdown]


def test_a_step_of_a_ttt_tree_is_drawn_as_a_grid(db):
    store, ids = db
    at = open_page("pages/tree.py", run=ids["in_context"], problem=2, node=1)
    assert "Test-time training" in texts(at) and "No training" in texts(at)
    drawn = [b for b in html_bodies(at) if b.startswith('<span class="tt-grid"')]
    assert len(drawn) >= 2  # the mapped-back answer and what the model wrote
    assert any("wrote: `" in c.value for c in at.caption)


def test_a_question_that_is_not_a_task_stays_text(tmp_path, monkeypatch):
    from tests.test_bundle import make_run

    store = Store(f"sqlite:///{tmp_path / 'plain.db'}")
    run_id = make_run(store)
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    at = open_page("pages/tree.py", run=run_id)
    assert not at.get("html") and any(m.value.startswith("**Question:**") for m in at.markdown)


def test_compare_draws_the_task_once_and_each_runs_answer(db):
    _, ids = db
    at = open_page("pages/compare.py", runs=f"{ids['trained']},{ids['in_context']}")
    assert not at.error
    bodies = html_bodies(at)
    assert sum('class="tt-task"' in b for b in bodies) == 1
    assert sum(b.startswith('<span class="tt-grid"') for b in bodies) == 2  # one answer per run
    matrix = json.dumps(json.loads(at.get("plotly_chart")[1].proto.spec))
    assert "answer input:" not in matrix and "\\n" not in matrix.split("hovertext")[-1][:200]


def test_the_report_draws_tasks_and_the_ttt_vote(db):
    from thinktrace.report import build_report

    store, ids = db
    page = build_report(store, ids["trained"], positions=[0])
    assert page.count('class="tt-task"') == 1 and page.count('class="tt-predictions"') == 1
    assert "Test-time training" in page and "<details><summary>The task as the model reads it" in page
    assert page.count('class="tt-grid"') >= 2 * 3 + 3 + 8


def test_the_run_form_offers_task_sets_and_a_path(empty_db, tmp_path):  # noqa: F811
    at = open_page("pages/run.py")
    at.radio(key="source").set_value("ARC tasks").run()
    assert "--dataset arclab:test" in at.code[0].value and "--limit 10" in at.code[0].value
    at.radio(key="arc_set").set_value("arclab:train").run()
    assert "--dataset arclab:train" in at.code[0].value
    at.radio(key="arc_set").set_value("arc").run()
    assert at.button(key="start").disabled
    at.text_input(key="arc_path").set_value(str(tmp_path / "missing.json")).run()
    assert len(at.error) == 1 and "missing.json: file not found" in plain(at.error[0].value) and not at.exception
    assert at.button(key="start").disabled
    at.text_input(key="arc_path").set_value(str(ROOT / "tests" / "fixtures" / "arc")).run()
    assert not at.error and "--dataset arc:" in at.code[0].value
    assert "(the first of 4)" in " ".join(n.label for n in at.number_input)
    at.radio(key="model_kind").set_value("lab-arc (ARC-like tasks, for ttt)").run()
    assert "--model lab-arc" in at.code[0].value


def test_the_run_monitor_draws_a_task_run(db):
    _, ids = db
    at = open_page("pages/run.py", run=ids["trained"])
    assert any('class="tt-task"' in b for b in html_bodies(at))


def test_malformed_task_and_training_meta_are_shown_without_a_traceback(tmp_path, monkeypatch):
    """An imported file may hold any JSON in meta: the pages and the report fall back, never crash."""
    from sqlmodel import select

    from store import models as m
    from thinktrace.report import build_report

    store = Store(f"sqlite:///{tmp_path / 'odd.db'}")
    run_id = ttt_run(store, 4, 4, limit=1)
    with store.session() as session:
        problem = session.exec(select(m.Problem)).one()
        problem.meta = {**problem.meta, "demos": "not a list", "test_input": {"x": 1}}
        session.add(problem)
        for node in session.exec(select(m.Node).where(m.Node.run_id == run_id)).all():
            node.meta = ({"ttt": {"tokens": "lots", "losses": ["a", 1.5, None], "steps": "4"}} if node.parent_seq is None
                         else {**node.meta, "augmentation_name": 7, "raw_answer": {"<b>": 1}})
            session.add(node)
        result = session.exec(select(m.Result)).one()
        result.meta = {"attempts": 5}
        session.add(result)
    monkeypatch.setenv("THINKTRACE_DB", store.url)
    at = open_page("pages/tree.py", run=run_id)
    assert not at.exception and "demonstrations are malformed" in texts(at)
    assert "Test-time training" in texts(at) and "<b>" not in "".join(html_bodies(at))
    page = build_report(store, run_id)
    assert 'class="tt-predictions"' in page and 'class="tt-task"' not in page

"""The Learn page (AppTest): it opens without loading a model or torch, and its first lesson runs
live on the lab pair."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "learn.py")


def test_opening_the_learn_page_imports_no_torch():
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({PAGE!r}, default_timeout=30).run()\n"
        "assert not at.exception, at.exception\n"
        "print('torch' in sys.modules, '|', at.title[0].value)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported, title = out.stdout.strip().splitlines()[-1].split(" | ")
    assert imported == "False"
    assert "Learn" in title


@pytest.mark.slow
def test_lesson_one_answers_greedily_and_samples_live():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.select_slider(key="learn_level").set_value(1).run()
    assert "Gold answer" in at.info[0].value
    at.button(key="learn_run1").click().run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Greedy answer" in labels and "Samples right" in labels
    samples = at.dataframe[0].value
    assert len(samples) == 16 and set(samples.columns) >= {"answer", "right", "tokens"}
    # The next lessons build on the same samples: votes, and the PRM's ranking.
    assert at.header[1].value.startswith("2") and any("Majority answer" in m.value for m in at.markdown)
    assert "Weighted best-of-N (PRM)" in [m.label for m in at.metric]


@pytest.mark.slow
def test_lesson_three_shows_the_arithmetic_checker_stopping_a_slipped_path():
    """The defaults (level 4, problem 2, seed 0): greedy and the vote are wrong, some of the 16 samples
    slip a digit (deterministic sampling), and the verifier picks a right one; the lesson shows the
    checker's verdict next to the PRM's score on each step."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.button(key="learn_run1").click().run()
    assert not at.exception
    texts = [m.value for m in at.markdown]
    stopped = [i for i, t in enumerate(texts) if t.startswith("**A path the checker stopped**")]
    assert stopped, "no sample with a slipped digit on this problem"
    path = texts[stopped[0] + 1]
    assert "arithmetic 0.0" in path and "✗" in path and "PRM " in path
    verdicts = {m.label: m.delta for m in at.metric}
    assert verdicts["Majority vote"] == "wrong" and verdicts["Weighted best-of-N (PRM)"] == "right"


def test_lesson_five_draws_the_budget_figure_by_level_from_the_recorded_samples():
    """The Budget page's figure (viz.curves.budget_figure), one panel per level in one row: pass@k
    as a dashed upper bound, majority and weighted best-of-k solid; no model is loaded."""
    import json

    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.button(key="learn_run5").click().run()
    assert not at.exception
    [chart] = at.get("plotly_chart")  # lesson 1 has not run: the budget figure is the only one
    spec = json.loads(chart.proto.spec)
    names = {t["name"] for t in spec["data"] if t.get("showlegend", True) is not False and "CI" not in t["name"]}
    assert {"majority (self-consistency)", "best-of-N weighted", "pass@k oracle coverage (upper bound)"} <= names
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles == [f"difficulty {level}" for level in range(1, 6)]
    assert "xaxis5" in spec["layout"] and "xaxis6" not in spec["layout"]  # five panels, one row
    dashed = {t["name"] for t in spec["data"] if t.get("line", {}).get("dash") == "dash"}
    assert dashed == {"pass@k oracle coverage (upper bound)"}


@pytest.mark.slow
def test_lesson_six_shows_a_thinking_trace_and_draws_accuracy_against_thinking():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    at.select_slider(key="learn_level").set_value(2).run()
    at.button(key="learn_run6").click().run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert "Thinking tokens" in labels and "Checks that failed" in labels
    assert any(m.value.startswith(":gray[Check") for m in at.markdown)
    at.select_slider(key="learn_think_level").set_value(2).run()
    at.button(key="learn_run6b").click().run()
    assert not at.exception, [e.value for e in at.exception]
    spec = at.get("plotly_chart")[-1].proto.spec
    assert "thinking tokens" in spec and "No thinking:" in "\n".join(m.value for m in at.markdown)


@pytest.mark.slow
def test_lesson_seven_measures_scale_what_on_the_ladder_live():
    at = AppTest.from_file(PAGE, default_timeout=600)
    at.run()
    at.radio(key="learn_scale_small").set_value("lab-xs").run()
    at.button(key="learn_run7").click().run()
    assert not at.exception, at.exception
    import json

    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "vs lab greedy, equal FLOPs" in json.dumps(json.loads(c.proto.spec)["layout"].get("title", {})))
    levels = {t["name"] for t in chart["data"] if t.get("name", "").startswith("difficulty")}
    assert levels == {"difficulty 2", "difficulty 3", "difficulty 4", "difficulty 5"}
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **Level")]
    assert len(verdicts) == 4 and all("lab greedy" in v for v in verdicts)


@pytest.mark.skipif(not (ROOT / "reasoning/lab/models/arc/config.json").is_file(), reason="lab-arc weights not installed")
def test_lesson_eight_learns_a_held_out_task_live_then_votes():
    """The task drawn as grids before anything runs; the button guesses in context, trains lab-arc on the
    demonstrations step by step (through the ttt strategy, the same set and vote as --strategy ttt), and shows
    the loss per step, the vote and every augmented prediction (tests/test_ttt_lesson.py checks the engine half)."""
    import json

    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    at.number_input(key="learn_ttt_task").set_value(2).run()
    task = next(h.proto.body for h in at.get("html") if 'class="tt-task"' in h.proto.body)
    assert task.count('class="tt-grid"') >= 2 * 3 + 2  # at least three demonstrations, the test input and the gold
    at.button(key="learn_run8").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    labels = [m.label for m in at.metric]
    assert "In context" in labels and "ARC's two attempts (pass@2)" in labels
    assert any(label.startswith("After 24 steps + vote of 8") for label in labels)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    loss = next(s for s in specs if s["layout"].get("title", {}).get("text") == "Test-time training: loss per step")
    assert len(loss["data"][0]["y"]) == 24
    table = next(h.proto.body for h in at.get("html") if 'class="tt-predictions"' in h.proto.body)
    assert table.count("<tr>") == 9 and "flip_h" in table

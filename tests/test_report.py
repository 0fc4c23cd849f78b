"""The static report: one HTML file that opens offline and shows the run, its budget curve and its
trees, with every model- or user-written text escaped."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reasoning.errors import UserError
from thinktrace.report import build_report
from store import Store
from store import models as m
from tests.test_bundle import make_run

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<img src=x onerror=alert(1)>"


def figures(page: str) -> list[dict]:
    """The plotly figures embedded in the page, as JSON (data of each Plotly.newPlot call)."""
    out = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"(fig\d+)",\s*(\[.*?\]),\s*\{', page, re.S):
        out.append({"id": match.group(1), "data": json.loads(match.group(2))})
    return out


@pytest.fixture()
def sc_run(store):
    run_id = make_run(store)  # self-consistency, n=3, self-eval scores, steps contain <script>
    with store.session() as session:
        run = session.get(m.Run, run_id)
        run.name, run.notes = f"class demo {HOSTILE}", f"notes {HOSTILE}"
    return run_id


def test_the_report_is_self_contained_with_summary_curve_and_three_trees(store, sc_run):
    page = build_report(store, sc_run)
    # offline: plotly.js inlined once, nothing fetched from elsewhere
    assert page.count("* plotly.js v") == 1
    assert len(page) > 1_000_000
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
    for fact in ("self_consistency", "scripted", "self_eval", "unit-bundle", "3/3 = 100.0%"):
        assert fact in page
    figs = figures(page)
    assert [f["id"] for f in figs] == ["fig0", "fig1", "fig2", "fig3"]  # curve + trees of problems 0, 1, 2
    curve_names = {t.get("name") for t in figs[0]["data"]}
    # the Budget page's figure and labels (viz.curves.budget_figure, reasoning.budget.ESTIMATOR_INFO)
    assert {"majority (self-consistency)", "best-of-N naive", "best-of-N weighted",
            "pass@k oracle coverage (upper bound)"} <= curve_names
    tree_seqs = [s for t in figs[1]["data"] if t.get("customdata") is not None for s in t["customdata"]]
    assert len(tree_seqs) == 1 + 3 * 3  # every node of problem 0 is a clickable point
    assert "What is 2 + 2?" in page and "Chosen path" in page


def test_hostile_text_in_steps_names_and_notes_is_shown_escaped(store, sc_run):
    page = build_report(store, sc_run)
    assert "<script>alert" not in page and HOSTILE not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the step, shown as text
    assert html_escaped(HOSTILE) in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_a_single_sample_run_has_no_budget_curve(store):
    run_id = make_run(store, strategy="cot", verifier=None, n=1)
    page = build_report(store, run_id, positions=[1])
    assert "Accuracy vs budget" not in page
    assert [f["id"] for f in figures(page)] == ["fig0"]


def test_an_unknown_problem_position_is_a_user_error(store, sc_run):
    with pytest.raises(UserError, match="no problem at position 7"):
        build_report(store, sc_run, positions=[7])


def test_the_cli_writes_the_report_file(tmp_path):
    db = tmp_path / "r.db"
    run_id = make_run(Store(f"sqlite:///{db}"))
    env = {**os.environ, "THINKTRACE_DB": str(db)}
    out = tmp_path / "run.html"
    proc = subprocess.run([sys.executable, "-m", "reasoning", "report", run_id[:8], "-o", str(out), "--problems", "0,2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(figures(out.read_text())) == 3
    bad = subprocess.run([sys.executable, "-m", "reasoning", "report", run_id, "-o", str(out), "--problems", "x"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--problems must be" in bad.stderr


def test_the_report_and_the_budget_curves_count_equivalent_answers_as_one(store):
    """Five chains per problem answer 2, \\sqrt{4}, 3, 3 and 2^{1}: spelled differently, the right answer
    wins the vote 3 to 2. The report's maj@k and the Budget page's (thinktrace.curves) read the same
    samples with the same answer equivalence, so they agree at every k (grouping by spelling would
    make 3 win at k = 5)."""
    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from reasoning.types import Problem
    from thinktrace import runner
    from thinktrace.curves import load_curves

    spellings = ["2", "\\sqrt{4}", "3", "3", "2^{1}"]
    problems = [Problem(key=f"h{i}", question=f"Half of four, take {i}?", answer="2", dataset="unit-equiv")
                for i in range(3)]
    lm = ScriptedLM(lambda prompt, sample, call: f"Half of four.\n\nThe answer is {spellings[sample % 5]}.")
    request = runner.RunRequest(strategy="self_consistency", dataset="unit-equiv", model="scripted",
                                config=SearchConfig(n=5)).validate()
    run_id = runner.create_run(store, request, problems, lm, None)
    runner.execute(store, run_id, lm, None)

    [trace] = [t for t in figures(build_report(store, run_id))[0]["data"] if t.get("name") == "majority (self-consistency)"]
    report = dict(zip(trace["x"], trace["y"]))
    curves = {p.k: p.accuracy for p in load_curves(store, run_ids=[run_id]).points if p.estimator == "maj"}
    assert sorted(report) == sorted(curves) == [1, 2, 4, 5]
    assert report == pytest.approx(curves)
    assert report[5] == pytest.approx(1.0)

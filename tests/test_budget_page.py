"""The Budget page (AppTest): empty state, one sweep, facets, axis switch, and links that restore a view."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from reasoning.backends.scripted import ScriptedLM
from reasoning.problems import load_problems
from store import Store
from thinktrace.sweep import run_sweep
from reasoning.verifiers import load_verifier

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "budget.py")
DATASET = "arith:1-2"  # levels 1 and 2 in round robin: two difficulty facets


def scripted_lm():
    """Knows the golds: even samples are right, odd ones off by one, and the judge likes the right ones."""
    gold = {p.question: int(p.answer) for p in load_problems(DATASET, limit=4)}

    def answer(prompt, sample, call):
        value = next(v for q, v in gold.items() if q in prompt) + (sample % 2)
        return f"{'Hmm.' if sample % 2 else 'Sure.'}\n\nThe answer is {value}."

    return ScriptedLM(answer, judge=lambda prompt: 0.8 if "Sure." in prompt else 0.3)


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "thinktrace.db"
    monkeypatch.setenv("THINKTRACE_DB", str(path))
    return Store(f"sqlite:///{path}")


@pytest.fixture()
def sweep_id(db):
    lm = scripted_lm()
    return run_sweep(db, ["self_consistency", "best_of_n", "cot"], [1, 2, 4], DATASET, limit=4,
                     verifier="self_eval", model="scripted", lm=lm, verifier_obj=load_verifier("self_eval", lm),
                     progress=False, name="page sweep")


def open_page(query=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def figure(at):
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_an_empty_database_says_which_command_makes_a_sweep(db):
    at = open_page()
    assert not at.exception
    assert "python -m reasoning sweep" in at.info[0].value
    assert not at.get("plotly_chart")


def test_runs_without_a_sweep_open_on_the_newest_run(db):
    """The page opened empty ("Pick one or more runs") although the database had runs."""
    from store.runs import list_runs
    from tests.test_bundle import make_run

    make_run(db, n=2), make_run(db, n=4)
    newest = list_runs(db)[0].id
    at = open_page()
    assert not at.exception and not at.error
    assert at.radio(key="budget_source").value == "runs" and at.multiselect(key="budget_runs").value == [newest]
    assert figure(at)["data"] and at.query_params["runs"] == newest


def test_one_sweep_shows_every_curve_with_bands_frontier_and_efficiency(sweep_id):
    at = open_page()
    assert not at.exception and not at.error
    fig = figure(at)
    names = {t.get("name") for t in fig["data"] if t.get("showlegend") is not False}
    assert {"majority (self-consistency)", "best-of-N naive", "best-of-N weighted", "cot",
            "pass@k oracle coverage (upper bound)", "compute-optimal frontier"} <= names
    bands = [t for t in fig["data"] if t.get("fill") == "toself"]
    assert len(bands) == 4  # one per multi-point curve; cot is a single point with error bars
    oracle = next(t for t in fig["data"] if t.get("name") == "pass@k oracle coverage (upper bound)")
    assert oracle["line"]["dash"] == "dash"
    assert fig["layout"]["xaxis"]["type"] == "log"
    subtitle = fig["layout"]["title"]["subtitle"]["text"]
    assert "model: scripted" in subtitle and "problems: 4" in subtitle and "seed: 0" in subtitle
    assert at.query_params["sweep"] == sweep_id
    assert any(f"sweep={sweep_id}" in code.value for code in at.code)  # the share link
    frontier, gains = at.dataframe[0].value, at.dataframe[1].value
    assert list(frontier["budget (samples N)"]) == [1, 2, 4]
    # sample 0 is right and scored highest: weighted best-of-N is perfect at every N, so it matches itself at 1
    assert "best-of-N weighted" in set(gains["strategy"])


def test_facets_draw_one_panel_per_difficulty_level(sweep_id):
    at = open_page()
    at.radio(key="budget_by").set_value("difficulty").run()
    assert not at.exception
    titles = [a["text"] for a in figure(at)["layout"]["annotations"]]
    assert "difficulty 1" in titles and "difficulty 2" in titles
    assert "difficulty 1" in set(at.dataframe[0].value["group"])
    at.radio(key="budget_by").set_value("pass1").run()
    assert not at.exception and any("pass@1 bin" in a["text"] for a in figure(at)["layout"]["annotations"])


def test_the_x_axis_switches_to_tokens_and_to_flops_with_the_verifier_share(sweep_id):
    at = open_page()
    at.radio(key="budget_x").set_value("tokens").run()
    assert figure(at)["layout"]["xaxis"]["title"]["text"].startswith("generated tokens per problem")
    assert at.query_params["x"] == "tokens"
    at.radio(key="budget_x").set_value("flops").run()
    assert figure(at)["layout"]["xaxis"]["title"]["text"].startswith("FLOPs")
    assert "Where the FLOPs go" in [h.value for h in at.subheader]
    shares = at.dataframe[0].value
    assert set(shares.loc[shares["curve"] == "majority (self-consistency)", "verifier share"]) == {0.0}
    assert (shares.loc[shares["curve"] == "best-of-N weighted", "verifier share"] > 0).all()


def test_a_link_restores_runs_axis_and_facet(db, sweep_id):
    from store.runs import list_runs

    run_id = next(r.id for r in list_runs(db) if r.strategy == "best_of_n")
    at = open_page({"runs": run_id, "x": "tokens", "by": "difficulty"})
    assert not at.exception
    assert at.radio(key="budget_source").value == "runs"
    assert at.multiselect(key="budget_runs").value == [run_id]
    assert at.radio(key="budget_x").value == "tokens" and at.radio(key="budget_by").value == "difficulty"
    assert not any(t.get("name") == "cot" for t in figure(at)["data"])


# ---------------------------------------------------------------------------------------------
# The compute-optimal policy section


def two_seed_lm():
    """For the problems of seeds 0 and 1 (a policy is fitted on one and tested on the other): on even golds
    every even sample is right ("Sure."), on odd golds the greedy sample is wrong ("Hmm.") and only odd
    samples are right; the judge likes "Sure." So the greedy chain's score tells the two kinds apart."""
    gold = {p.question: int(p.answer) for seed in (0, 1) for p in load_problems(DATASET, limit=4, seed=seed)}

    def answer(prompt, sample, call):
        value = next(v for q, v in gold.items() if q in prompt)
        wrong = (sample + value) % 2 == 1
        return f"{'Hmm.' if wrong else 'Sure.'}\n\nThe answer is {value + wrong}."

    return ScriptedLM(answer, judge=lambda prompt: 0.8 if "Sure." in prompt else 0.3)


def test_a_policy_shows_which_bin_gets_what_and_is_tested_on_a_held_out_sweep(db):
    from thinktrace.policy import build_policy

    lm = two_seed_lm()
    verifier = load_verifier("self_eval", lm)
    fit_id, test_id = (run_sweep(db, ["cot", "best_of_n"], [1, 2, 4], DATASET, limit=4, seed=seed, verifier="self_eval",
                                 model="scripted", lm=lm, verifier_obj=verifier, progress=False, name=f"seed {seed}")
                       for seed in (0, 1))
    at = open_page({"sweep": test_id})
    assert not at.exception and not at.error
    assert any("policy build" in info.value for info in at.info)  # no policy yet: the command to make one
    build_policy(db, fit_id, name="two bins", n_bins=2)
    build_policy(db, fit_id, n_bins=2, oracle=True)
    at = open_page({"sweep": test_id})
    assert not at.exception and not at.error
    tables = [d.value for d in at.dataframe]
    bins = next(t for t in tables if "bin (1 = easiest)" in t.columns)
    assert list(bins["bin (1 = easiest)"]) == [1, 2]
    chart = json.loads(at.get("plotly_chart")[1].proto.spec)
    names = {t.get("name") for t in chart["data"]}
    assert {"compute-optimal policy", "oracle-difficulty policy (upper bound)"} <= names
    assert any("Weighted best-of-N's best" in md.value for md in at.markdown)
    table = next(t for t in tables if "best fixed within those tokens" in t.columns)
    assert len(table) >= 1 and table["policy"].between(0, 1).all()
    at = open_page({"sweep": fit_id})  # on its own fit sweep: said so, not tested there
    assert any("fitted on this sweep" in c.value for c in at.caption)


def test_scale_what_puts_a_smaller_ladder_model_with_search_against_a_larger_one(db):
    """Two sweeps recorded as lab-xs (searching) and lab (greedy): the section matches FLOPs with the
    models' recorded pre-training compute and draws the exchange by difficulty."""
    lm = two_seed_lm()
    verifier = load_verifier("self_eval", lm)
    for model, strategies in (("lab-xs", ["cot", "best_of_n"]), ("lab", ["cot"])):
        run_sweep(db, strategies, [1, 2, 4], DATASET, limit=4, verifier="self_eval", model=model, lm=lm,
                  verifier_obj=verifier, progress=False, name=f"{model} sweep")
        if model == "lab-xs":  # one size only: the section says what else to run
            assert any("two sizes of the lab ladder" in i.value for i in open_page().info)
    at = open_page()
    assert not at.exception and not at.error
    assert at.selectbox(key="scale_small").value != at.selectbox(key="scale_large").value
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if "greedy" in json.dumps(json.loads(c.proto.spec)["layout"].get("title", {})))
    assert {t["name"] for t in chart["data"] if t.get("name")} == {"difficulty 1", "difficulty 2"}
    table = next(d.value for d in at.dataframe if "gain (points)" in d.value.columns)
    assert set(table["difficulty"]) == {1, 2} and len(table) == 2 * 9  # two levels x the default ratios

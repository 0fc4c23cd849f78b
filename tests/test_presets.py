"""Presets (reasoning/presets.py): search-and-learn's settings land in a run's params, an explicit flag
overrides them, an unknown name is one line; and the beam semantics the preset turns on."""
from __future__ import annotations

import pytest
from sqlmodel import select

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.presets import PRESETS, SEARCH_AND_LEARN_SYSTEM_PROMPT, preset_values
from reasoning.strategies.beam_search import search as beam_search
from reasoning.tree import Tree
from reasoning.types import PRUNED, Problem
from reasoning.verifiers import load_verifier
from store import models as m
from tests.helpers_cli import run_cli
from thinktrace import runner
from thinktrace.sweep import run_sweep

PROBLEM = Problem(key="p0", question="What is 2 + 2?", answer="4", dataset="unit")
STEPS = ["First we add.", "Then we check.", "Therefore, the final answer is: $\\boxed{4}$. I hope it is correct."]


def script(prompt: str, sample: int, call: int) -> str:
    """The rest of the solution after the steps the prompt already holds."""
    done = prompt.split("Answer:\n", 1)[1].count("\n\n")
    return "\n\n".join(STEPS[done:])


def test_search_and_learn_declares_their_settings():
    knobs = PRESETS["search-and-learn"].knobs
    assert knobs["system_prompt"] == SEARCH_AND_LEARN_SYSTEM_PROMPT
    assert SEARCH_AND_LEARN_SYSTEM_PROMPT.startswith("Solve the following math problem efficiently and clearly:\n\n")
    assert "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct." in SEARCH_AND_LEARN_SYSTEM_PROMPT
    assert {k: knobs[k] for k in ("temperature", "max_new_tokens", "max_step_tokens", "max_steps", "aggregate", "n",
                                  "beam_width", "lookahead", "last_step_to_eos", "extractor")} == {
        "temperature": 0.8, "max_new_tokens": 2048, "max_step_tokens": 2048, "max_steps": 40, "aggregate": "last",
        "n": 4, "beam_width": 4, "lookahead": 0, "last_step_to_eos": True, "extractor": "math"}
    SearchConfig(**knobs).validate()  # every value is a knob's, in range


def test_the_preset_prompt_and_settings_land_in_a_runs_params_and_reach_the_model(store):
    lm = ScriptedLM(script, judge=lambda prompt: 0.7)
    request = runner.RunRequest(strategy="beam_search", dataset="unit", model="scripted", verifier="self_eval",
                                config=SearchConfig(**preset_values("search-and-learn", {"n": 2, "beam_width": 2})),
                                preset="search-and-learn").validate()
    run_id = runner.create_run(store, request, [PROBLEM], lm, load_verifier("self_eval", lm))
    runner.execute(store, run_id, lm, load_verifier("self_eval", lm))
    with store.session() as session:
        run = session.get(m.Run, run_id)
        result = session.exec(select(m.Result)).one()
    assert run.params["preset"] == "search-and-learn"
    assert run.params["system_prompt"] == SEARCH_AND_LEARN_SYSTEM_PROMPT and run.params["extractor"] == "math"
    assert (run.params["max_steps"], run.params["max_new_tokens"], run.params["n"]) == (40, 2048, 2)
    assert all(p.startswith(f"System: {SEARCH_AND_LEARN_SYSTEM_PROMPT}\n") for call in lm.calls for p in call["prompts"])
    assert result.correct and result.answer == "4"
    assert result.meta["prompt_tokens"] > 0  # the prefill, counted by the model's own tokens


def test_an_explicit_flag_overrides_the_preset_and_the_rest_keep_it(tmp_path):
    db = tmp_path / "x.db"
    result = run_cli("run", "--strategy", "cot", "--dataset", "arith:1", "--limit", "1", "--preset", "search-and-learn",
                     "--temperature", "0.5", "--max-steps", "3", "--json", db=db)
    assert result.code == 0, result.stderr
    from store import Store
    from store.runs import list_runs

    store = Store(f"sqlite:///{db}")
    [row] = list_runs(store)
    with store.session() as session:
        params = session.get(m.Run, row.id).params
    assert (params["temperature"], params["max_steps"]) == (0.5, 3)  # given: kept
    assert (params["max_new_tokens"], params["system_prompt"], params["preset"]) == (
        2048, SEARCH_AND_LEARN_SYSTEM_PROMPT, "search-and-learn")  # not given: the preset's

    plain = run_cli("run", "--strategy", "cot", "--dataset", "arith:1", "--limit", "1", "--temperature", "0.5",
                    db=tmp_path / "y.db")
    assert plain.code == 0, plain.stderr
    store = Store(f"sqlite:///{tmp_path / 'y.db'}")
    with store.session() as session:
        params = session.exec(select(m.Run)).one().params
    assert (params["temperature"], params["max_new_tokens"], params["system_prompt"]) == (0.5, 256, "")
    assert "preset" not in params and params["extractor"] == "standard"  # arith's own


@pytest.mark.parametrize("command", [
    ["run", "--strategy", "cot", "--dataset", "arith:1", "--limit", "1"],
    ["sweep", "--strategies", "cot", "--budgets", "1", "--dataset", "arith:1", "--limit", "1"],
])
def test_an_unknown_preset_is_one_line_exit_2_and_nothing_written(tmp_path, command):
    result = run_cli(*command, "--preset", "search-and-lurn", db=tmp_path / "x.db")
    assert result.code == 2
    assert result.lines == ["error: unknown preset 'search-and-lurn': choose one of search-and-learn"]
    assert not (tmp_path / "x.db").exists()


def test_a_sweep_stores_its_preset_and_every_run_says_so(store):
    lm = ScriptedLM(script, judge=lambda prompt: 0.7)
    cfg = SearchConfig(**preset_values("search-and-learn", {"temperature": 0.6}))
    sid = run_sweep(store, ["best_of_n"], [1, 2], "arith:1", limit=1, model="scripted", verifier="self_eval", cfg=cfg,
                    lm=lm, verifier_obj=load_verifier("self_eval", lm), progress=False, preset="search-and-learn")
    with store.session() as session:
        sweep = session.get(m.Sweep, sid)
        runs = session.exec(select(m.Run).where(m.Run.sweep_id == sid)).all()
    assert sweep.params["preset"] == "search-and-learn" and sweep.params["config"]["temperature"] == 0.6
    assert [(r.params["preset"], r.params["system_prompt"], r.params["temperature"]) for r in runs] == [
        ("search-and-learn", SEARCH_AND_LEARN_SYSTEM_PROMPT, 0.6)]


def test_the_last_step_writes_the_rest_of_the_text_as_its_steps():
    lm = ScriptedLM(script, judge=lambda prompt: 0.7)
    tree = Tree(PROBLEM.question)
    cfg = SearchConfig(n=1, beam_width=1, max_steps=2, last_step_to_eos=True, max_new_tokens=99)
    outcome = beam_search(PROBLEM, lm, load_verifier("self_eval", lm), cfg, tree)
    assert [c["stop"] for c in lm.calls] == [["\n\n"], None] and lm.calls[1]["max_new_tokens"] == 99
    leaf = tree.nodes[outcome.node]
    assert tree.steps(leaf) == STEPS and leaf.depth == 3 and leaf.answer == "4"
    assert [n.meta.get("to_eos", False) for n in tree.path(leaf)] == [False, True, True]
    assert {n.iteration for n in tree.path(leaf)[1:]} == {1}

    plain = Tree(PROBLEM.question)
    beam_search(PROBLEM, lm, load_verifier("self_eval", lm), cfg.replace(last_step_to_eos=False), plain)
    assert max(n.depth for n in plain.nodes) == 2  # a path ends at max_steps, its answer unwritten


def test_filter_duplicates_prunes_candidates_whose_path_repeats_an_earlier_one():
    lm = ScriptedLM(script, judge=lambda prompt: 0.7)  # every sample writes the same steps
    cfg = SearchConfig(n=4, beam_width=2, max_steps=5)
    kept = Tree(PROBLEM.question)
    beam_search(PROBLEM, lm, load_verifier("self_eval", lm), cfg, kept)
    first = [n for n in kept.nodes if n.depth == 1]
    assert sum(n.status != PRUNED for n in first) == 2  # top N/M of the identical candidates
    filtered = Tree(PROBLEM.question)
    beam_search(PROBLEM, lm, load_verifier("self_eval", lm), cfg.replace(filter_duplicates=True), filtered)
    first = [n for n in filtered.nodes if n.depth == 1]
    assert [n.status == PRUNED and n.meta.get("duplicate", False) for n in first] == [False, True, True, True]

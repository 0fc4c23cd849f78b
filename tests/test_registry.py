"""One declaration per strategy: a strategy defined here, with one knob of its own, is registered and
then shows up everywhere a strategy's knobs matter (the knob's default, help and range included):
`run --help` and `run` itself, the Run page, sweeps, and the params a run stores. Unregistered, it is
gone again."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import Knob, SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import SEARCHES, Strategy, check_config, lookup, names, register, unregister
from reasoning.strategies.chains import sample_chains
from reasoning.types import Outcome
from store import models as m
from store import Store
from thinktrace.cli import app
from thinktrace.sweep import SweepSpec, run_sweep

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PICK_HELP = "toy_pick: which of the N samples answers (1 = the first)."


def pick_search(problem, lm, verifier, cfg, tree) -> Outcome:
    """N samples; the answer is the one of sample number cfg.pick."""
    leaves = sample_chains(problem, lm, tree, n=cfg.n, temperature=cfg.temperature, cfg=cfg)
    leaf = leaves[cfg.pick - 1]
    tree.select(leaf)
    return Outcome(leaf.answer, leaf.seq, {leaf.answer: 1.0} if leaf.answer is not None else {})


def check_pick(cfg: SearchConfig) -> None:
    if cfg.pick > cfg.n:
        raise UserError(f"--pick ({cfg.pick}) cannot exceed --n ({cfg.n})")


TOY = Strategy("toy_pick", "N samples, sample --pick answers (a test's toy)", pick_search,
               knobs=("n", "temperature", Knob("pick", 1, PICK_HELP, low=1)), kind=SEARCHES, check=check_pick)


@pytest.fixture()
def toy():
    register(TOY)
    yield TOY.name
    unregister(TOY.name)


def scripted() -> ScriptedLM:
    return ScriptedLM(lambda prompt, sample, call: f"Try {sample}.\n\nThe answer is {sample}.")


def test_the_knob_is_a_search_config_knob_with_its_range(toy):
    assert lookup(toy) is TOY and toy in names()
    assert SearchConfig().pick == SearchConfig.pick == 1 and SearchConfig(pick=3).to_dict()["pick"] == 3
    with pytest.raises(UserError, match=r"^--pick must be at least 1 \(got 0\)$"):
        SearchConfig(pick=0).validate()
    with pytest.raises(UserError, match=r"--pick \(5\) cannot exceed --n \(4\)"):
        check_config(toy, SearchConfig(pick=5))


def test_run_help_lists_the_knob_and_run_stores_it(toy, tmp_path, monkeypatch):
    help_text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    assert "--pick" in help_text and PICK_HELP in help_text and "toy_pick" in help_text

    cli_main = importlib.import_module("thinktrace.cli.main")  # the module (the package exports its main())
    monkeypatch.setattr(cli_main, "_load_models", lambda *args, **kwargs: (scripted(), None))
    db = tmp_path / "t.db"
    args = ["run", "--strategy", toy, "--dataset", "arith:1", "--limit", "2", "--n", "3", "--db", str(db)]
    result = CliRunner().invoke(app, [*args, "--pick", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    with Store(f"sqlite:///{db}").session() as session:
        params = session.get(m.Run, summary["id"]).params
    assert params["pick"] == 2 and params["n"] == 3 and summary["name"] == "toy_pick n=3 on arith:1"
    refused = CliRunner().invoke(app, [*args, "--pick", "0"])
    assert isinstance(refused.exception, UserError) and str(refused.exception) == "--pick must be at least 1 (got 0)"


def test_the_run_page_shows_the_knob_and_checks_it(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("THINKTRACE_DB", str(tmp_path / "app.db"))
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="strategy").set_value(toy).run()
    knob = at.number_input(key="knob_pick")
    assert (knob.label, knob.value, knob.help, knob.min) == ("pick", 1, PICK_HELP, 1)
    assert "--pick 1" in at.code[0].value and not at.error
    at.number_input(key="knob_pick").set_value(5).run()  # more than n = 4
    assert "--pick (5) cannot exceed --n (4)" in at.error[0].value and at.button(key="start").disabled


def test_a_sweep_runs_it_per_budget_with_the_knob(toy, store):
    plan = SweepSpec(strategies=["self_consistency", toy], budgets=[1, 2], dataset="arith:1",
                     config=SearchConfig(pick=1)).validate().plan()
    assert [(p.strategy, p.n, p.config.pick) for p in plan] == [("self_consistency", 2, 1), (toy, 1, 1), (toy, 2, 1)]
    sid = run_sweep(store, [toy], [1, 2], "arith:1", limit=1, model="scripted", cfg=SearchConfig(pick=1),
                    lm=scripted(), verifier_obj=None, progress=False)
    with store.session() as session:
        runs = session.query(m.Run).filter(m.Run.sweep_id == sid).all()
        assert sorted((r.params["n"], r.params["pick"], r.status) for r in runs) == [(1, 1, "done"), (2, 1, "done")]


def test_unregistered_it_is_gone():
    register(TOY)
    unregister(TOY.name)
    assert TOY.name not in names() and "pick" not in SearchConfig().to_dict()
    with pytest.raises(TypeError):
        SearchConfig(pick=1)
    assert "--pick" not in CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output

"""Cost axes of budget curves: wall-clock seconds and prompt (prefill) tokens beside samples, generated
tokens and FLOPs (which include the verifier's)."""
from __future__ import annotations

import json

import pytest
from sqlmodel import select

from reasoning.backends.scripted import ScriptedLM
from reasoning.budget import AXES, frontier
from reasoning.config import SearchConfig
from reasoning.types import Problem
from reasoning.verifiers import load_verifier
from store import models as m
from tests.helpers_cli import run_cli
from thinktrace import runner
from thinktrace.curves import load_curves

PROBLEMS = [Problem(key=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), dataset="unit") for i in range(3)]


def script(prompt: str, sample: int, call: int) -> str:
    i = int(prompt.split("What is ")[1].split(" ")[0])
    return f"Add them.\n\nThe answer is {2 * i + (sample % 2)}."


def make_run(store, strategy, n, **knobs):
    lm = ScriptedLM(script, judge=lambda prompt: 0.6, n_params=1000)
    verifier = load_verifier("self_eval", lm)
    request = runner.RunRequest(strategy=strategy, dataset="unit", model="scripted", verifier="self_eval",
                                config=SearchConfig(n=n, **knobs)).validate()
    run_id = runner.create_run(store, request, PROBLEMS, lm, verifier)
    runner.execute(store, run_id, lm, verifier)
    return run_id


def test_every_run_records_its_prompt_tokens_and_seconds_per_problem(store):
    run_id = make_run(store, "beam_search", 2, beam_width=1, max_steps=3)
    with store.session() as session:
        results = session.exec(select(m.Result).where(m.Result.run_id == run_id)).all()
    # each distinct prompt of each call once, in the model's own tokens (ScriptedLM: words)
    prompt = "Question: What is 0 + 0?\nAnswer:\n"
    assert min(r.meta["prompt_tokens"] for r in results) >= len(prompt.split()) * 2  # two calls: root, then one step
    assert all(r.wall_seconds > 0 for r in results)


def test_curves_have_seconds_and_prompt_token_axes_and_flops_count_the_verifier(store):
    sampled = make_run(store, "best_of_n", 4)
    tree = make_run(store, "beam_search", 2, beam_width=1, max_steps=3)
    points = load_curves(store, run_ids=[sampled, tree]).points
    assert {"seconds", "prompt_tokens"} <= set(AXES)
    with store.session() as session:
        results = {rid: session.exec(select(m.Result).where(m.Result.run_id == rid)).all() for rid in (sampled, tree)}
    mean = lambda rows, f: sum(map(f, rows)) / len(rows)  # noqa: E731
    [direct] = [p for p in points if p.estimator == "direct"]
    assert direct.seconds_per_problem == pytest.approx(mean(results[tree], lambda r: r.wall_seconds))
    assert direct.prompt_tokens_per_problem == pytest.approx(mean(results[tree], lambda r: r.meta["prompt_tokens"]))
    assert direct.x("seconds") == direct.seconds_per_problem and direct.x("prompt_tokens") == direct.prompt_tokens_per_problem
    # self_eval is the policy judging itself: FLOPs = policy's 2·P·tokens + the verifier's 2·P·scored tokens
    assert direct.flops == pytest.approx(2 * 1000 * direct.tokens_per_problem * 2)
    assert direct.verifier_flops == pytest.approx(2 * 1000 * direct.tokens_per_problem)
    wbon = sorted((p for p in points if p.estimator == "wbon"), key=lambda p: p.k)
    whole = mean(results[sampled], lambda r: r.wall_seconds)
    assert [p.seconds_per_problem for p in wbon] == pytest.approx([whole * k / 4 for k in (1, 2, 4)])  # k/N of a run
    prompt = mean(results[sampled], lambda r: r.meta["prompt_tokens"])
    assert {p.prompt_tokens_per_problem for p in wbon} == {prompt}  # one prompt, shared by the k samples
    assert frontier(points, "seconds") and frontier(points, "prompt_tokens")


def test_an_adaptive_runs_point_has_its_seconds_and_prompt_tokens_too(store):
    run_id = make_run(store, "adaptive_consistency", 4)
    [point] = load_curves(store, run_ids=[run_id]).points
    with store.session() as session:
        results = session.exec(select(m.Result).where(m.Result.run_id == run_id)).all()
    assert point.estimator == "adaptive"
    assert point.seconds_per_problem == pytest.approx(sum(r.wall_seconds for r in results) / len(results))
    assert point.prompt_tokens_per_problem == pytest.approx(sum(r.meta["prompt_tokens"] for r in results) / len(results))


def test_curves_json_gives_the_new_axes_as_x(store, tmp_path):
    make_run(store, "best_of_n", 2)
    db = tmp_path / "thinktrace.db"
    for axis, key in (("seconds", "seconds_per_problem"), ("prompt_tokens", "prompt_tokens_per_problem")):
        result = run_cli("curves", _only_run(store), "--json", "--x", axis, db=db)
        assert result.code == 0, result.stderr
        points = json.loads(result.stdout)
        assert points and all(p["x"] == p[key] and p[key] is not None for p in points)
    bad = run_cli("curves", _only_run(store), "--x", "watts", db=db)
    assert bad.code == 2 and "unknown --x 'watts'" in bad.stderr


def _only_run(store) -> str:
    with store.session() as session:
        return session.exec(select(m.Run.id)).one()

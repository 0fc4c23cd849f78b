"""Many problems in flight (reasoning/scheduler.py): calls merged across problems, results equal to one
problem at a time for every strategy on the lab model, errors and Ctrl-C handled as before, and a run
killed with K problems in flight resumes to what an uninterrupted run gives."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoning.backends.scripted import ScriptedLM
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.problems import load_problems
from reasoning.scheduler import Scheduler
from reasoning.strategies import lookup, names
from reasoning.types import Problem
from store import Store
from store.runs import get_run, list_runs, run_results, run_summary, tree_nodes
from thinktrace import runner

ROOT = Path(__file__).resolve().parents[1]


class CountingVerifier:
    """Scores a step by its length; counts `score` and `score_many` calls."""

    name, evaluation_only, n_params = "counting", False, 0

    def __init__(self):
        self.single, self.merged = 0, []

    def score(self, question, paths, gold=None):
        self.single += 1
        return self._score(paths)

    def score_many(self, items):
        self.merged.append(len(items))
        return [self._score(paths) for _, paths, _ in items]

    @staticmethod
    def _score(paths):
        return [[1 / (1 + len(step)) for step in path] for path in paths]


def problems(count: int) -> list[Problem]:
    return [Problem(key=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1), dataset="test") for i in range(count)]


def scripted() -> ScriptedLM:
    def script(prompt, sample, call):
        number = int(prompt.split("What is ")[1].split(" ")[0])
        return f"{number} + 1 = {number + 1 + sample % 2}. The answer is {number + 1 + sample % 2}."
    return ScriptedLM(script)


def run_with(store, lm, verifier, strategy, count, concurrency, **knobs):
    request = runner.RunRequest(strategy=strategy, dataset="test", verifier="self_eval" if verifier else None,
                                config=SearchConfig(**knobs))
    run_id = runner.create_run(store, request, problems(count), lm, verifier)
    runner.execute(store, run_id, lm, verifier, concurrency=concurrency)
    return run_id


@pytest.mark.parametrize("concurrency,merged", [(1, [1] * 6), (3, [3, 3]), (4, [4, 2]), (8, [6])])
def test_model_and_verifier_calls_of_problems_in_flight_are_merged(store, concurrency, merged):
    lm, verifier = scripted(), CountingVerifier()
    run_id = run_with(store, lm, verifier, "best_of_n", 6, concurrency, n=4)
    assert lm.batches == merged  # one complete_many per round, carrying one call per problem in flight
    assert verifier.merged == merged and verifier.single == 0
    assert len(lm.calls) == 6  # every problem's own call, with its own seed
    assert len({call["seed"] for call in lm.calls}) == 6
    assert run_summary(store, run_id).problems_done == 6


def test_a_finished_problem_makes_room_for_the_next_at_once(store):
    """Problems of different lengths: a short one's place is taken by the next problem, which joins
    the next merged call rather than waiting for the whole group."""
    def script(prompt, sample, call):
        steps = prompt.split("Answer:\n", 1)[1].count("\n\n")
        number = int(prompt.split("What is ")[1].split(" ")[0])
        if number % 2 == 0 or steps >= 2:  # even problems answer in the first step
            return f"The answer is {number + 1}.\n\n"
        return f"step {steps}\n\n"
    lm = ScriptedLM(script)
    verifier = CountingVerifier()
    run_with(store, lm, verifier, "beam_search", 4, 2, n=2, beam_width=1, max_steps=5)
    # p0 (1 call) and p1 (3 calls) start; p2 (1 call) takes p0's place in the second round, p3
    # (3 calls) takes p2's in the third, then finishes alone.
    assert lm.batches == [2, 2, 2, 1, 1]


def test_results_do_not_depend_on_how_many_problems_are_in_flight_scripted(tmp_path):
    outs = []
    for k in (1, 5):
        store = Store(f"sqlite:///{tmp_path / f'k{k}.db'}")
        run_id = run_with(store, scripted(), CountingVerifier(), "best_of_n", 7, k, n=3)
        outs.append([(r.key, r.answer, r.tokens, r.node_seq, r.votes) for r in run_results(store, run_id)])
    assert outs[0] == outs[1]


def test_an_error_in_one_problem_fails_the_run_and_ends_the_others(store):
    def script(prompt, sample, call):
        if "What is 2 " in prompt:
            raise RuntimeError("the model broke on problem 2")
        return "The answer is 1."
    lm = ScriptedLM(script)
    with pytest.raises(RuntimeError, match="broke on problem 2"):
        run_with(store, lm, None, "self_consistency", 6, 4, n=2)
    [run] = list_runs(store)
    assert run.status == "failed" and "broke on problem 2" in get_run(store, run.id).error
    assert run.problems_done < 6


def test_ctrl_c_with_problems_in_flight_leaves_the_run_interrupted_and_resumable(store):
    calls = {"n": 0}

    def script(prompt, sample, call):
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        number = int(prompt.split("What is ")[1].split(" ")[0])
        return f"The answer is {number + 1}."
    lm = ScriptedLM(script)
    request = runner.RunRequest(strategy="cot", dataset="test", config=SearchConfig())
    run_id = runner.create_run(store, request, problems(12), lm, None)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(store, run_id, lm, None, concurrency=4)
    summary = run_summary(store, run_id)
    assert summary.status == "interrupted" and 0 < summary.problems_done < 12
    runner.execute(store, run_id, ScriptedLM(lambda p, s, c: f"The answer is {int(p.split('What is ')[1].split(' ')[0]) + 1}."),
                   None, concurrency=4)
    done = run_summary(store, run_id)
    assert done.status == "done" and done.problems_done == 12 and done.correct == 12


def test_a_search_that_stops_early_is_closed_and_the_scheduler_raises_the_error():
    lm = scripted()
    ended = []

    def job(which):
        def search(model, verifier):
            try:
                if which == 1:
                    raise ValueError("bad problem")
                return model.complete(["What is 3 + 1?"], n=1, max_new_tokens=8, temperature=0)
            finally:
                ended.append(which)
        return search
    scheduler = Scheduler(lm, None, concurrency=3)
    with pytest.raises(ValueError, match="bad problem"):
        list(scheduler.run([(i, job(i)) for i in range(3)]))
    assert sorted(ended) == [0, 1]  # job 0 was suspended in its call and closed; job 2 never started


def test_concurrency_below_one_is_refused(store):
    with pytest.raises(UserError, match="--concurrency must be at least 1"):
        run_with(store, scripted(), None, "cot", 2, 0)


def test_wall_seconds_of_problems_in_flight_add_up_to_the_elapsed_time(store):
    def script(prompt, sample, call):
        time.sleep(0.05)
        return "The answer is 1."
    lm = ScriptedLM(script)
    started = time.perf_counter()
    run_id = run_with(store, lm, None, "self_consistency", 8, 8, n=2)
    elapsed = time.perf_counter() - started
    total = sum(r.wall_seconds for r in run_results(store, run_id))
    assert total <= elapsed  # shares of merged calls, not 8 overlapping clocks
    assert total >= 8 * 2 * 0.05 * 0.9  # every sleep of the scripted model is counted once


# --- the real lab model -------------------------------------------------------------------------------


def _signature(store, run_id):
    """What a run computed, per problem: its result and every node. The chosen node is compared by its
    path's texts: among chains with identical text (duplicate samples), which one is marked chosen
    can follow a last-bit difference of their confidences, which batch shapes change."""
    out = []
    for r in run_results(store, run_id):
        nodes = tree_nodes(store, run_id, r.problem_id)
        by_seq = {n.seq: n for n in nodes}
        chosen, node = [], by_seq.get(r.node_seq)
        while node is not None:
            chosen.append(node.text)
            node = by_seq.get(node.parent_seq)
        shape = [(n.seq, n.parent_seq, n.text, n.tokens, n.answer, n.status == "pruned") for n in nodes]
        scores = [-1.0 if n.score is None else n.score for n in nodes]
        out.append(((r.key, r.answer, r.correct, r.tokens, r.model_calls, r.verifier_calls, chosen[::-1], shape),
                    scores))
    return out


def assert_same_runs(a, b):
    """Everything equal; verifier scores equal up to float32 noise of the batch shape (~1e-6)."""
    assert [exact for exact, _ in a] == [exact for exact, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert x == pytest.approx(y, abs=1e-4)


# compute_optimal's plan, as `policy build` would store it: a probe score >= 0.5 keeps the probe's answer,
# a lower one runs weighted best-of-4
HAND_PLAN = {"budget": 500, "probe": "verifier_score", "edges": [-0.5], "aggregate": "last", "verifier": "prm:lab",
             "arms": [{"strategy": "cot", "knobs": {}, "label": "cot"},
                      {"strategy": "best_of_n", "knobs": {"n": 4, "select": "weighted"}, "label": "best_of_n weighted n=4"}]}
STRATEGY_KNOBS = {"compute_optimal": dict(policy="hand", budget=500, plan=HAND_PLAN), "mcts": dict(expansions=6), "revise": dict(n=4, parallel=2), "budget_forcing": dict(think_tokens=40),
                  "deepconf_online": dict(n=6, warmup=2), "adaptive_consistency": dict(n=6, batch=2), "ttt": dict(n=2, ttt_steps=2, ttt_augment=2)}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", names())
def test_every_strategy_gives_the_same_results_with_8_problems_in_flight_on_the_lab_model(lab_pair, tmp_path, strategy):
    lm, prm = lab_pair
    knobs = {"n": 4, **STRATEGY_KNOBS.get(strategy, {})}
    if "beam_width" in lookup(strategy).knob_names:
        knobs["beam_width"] = 2
    cfg = SearchConfig(**{k: v for k, v in knobs.items() if k in lookup(strategy).knob_names or k == "n"})
    dataset = "arclab:test" if lookup(strategy).trains else "arith:3"  # ttt learns from demonstrations
    request = runner.RunRequest(strategy=strategy, dataset=dataset, limit=10, config=cfg).validate()
    verifier = prm if request.verifier else None
    problems_ = load_problems(dataset, limit=10)
    outs = []
    for k in (1, 8):
        store = Store(f"sqlite:///{tmp_path / f'k{k}.db'}")
        run_id = runner.create_run(store, request, problems_, lm, verifier)
        runner.execute(store, run_id, lm, verifier, concurrency=k)
        outs.append(_signature(store, run_id))
    assert_same_runs(*outs)


@pytest.fixture(scope="module")
def lab_pair():
    from reasoning.backends import load_model
    from reasoning.verifiers import load_verifier

    lm = load_model("lab")
    return lm, load_verifier("prm:lab", lm)


def _cli(*args, db):
    env = {**os.environ, "THINKTRACE_DB": str(db), "THINKTRACE_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_run_killed_with_8_problems_in_flight_resumes_to_what_an_uninterrupted_run_gives(tmp_path):
    args = ["run", "--strategy", "beam_search", "--n", "4", "--beam-width", "2", "--dataset", "arith:4",
            "--limit", "40", "--seed", "3", "--concurrency", "8", "--json"]
    killed, reference = tmp_path / "killed.db", tmp_path / "reference.db"
    run_id = "22222222-3333-4444-5555-666666666666"
    proc = _cli(*args, "--run-id", run_id, db=killed)
    deadline, done = time.time() + 300, 0
    while time.time() < deadline and proc.poll() is None:  # kill -9 once a few problems have committed
        if killed.exists():
            try:
                done = run_summary(Store(f"sqlite:///{killed}"), run_id).problems_done
            except Exception:  # noqa: BLE001 - the run row may not exist yet
                done = 0
            if done >= 10:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(f"sqlite:///{killed}")
    partial = run_summary(store, run_id)
    assert partial.status == "interrupted" and 10 <= partial.problems_done < 40
    resumed = _cli("resume", run_id[:8], "--concurrency", "3", "--json", db=killed)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    ref = _cli(*args[:-3], "--concurrency", "1", "--json", db=reference)
    out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    ref_store, ref_id = Store(f"sqlite:///{reference}"), json.loads(out)["id"]
    assert run_summary(store, run_id).status == "done"
    assert_same_runs(_signature(store, run_id), _signature(ref_store, ref_id))


def test_run_concurrency_zero_is_one_line_and_exit_2(tmp_path):
    proc = _cli("run", "--strategy", "cot", "--limit", "1", "--concurrency", "0", db=tmp_path / "t.db")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1].endswith("--concurrency must be at least 1 (got 0)")
    assert not (tmp_path / "t.db").exists()

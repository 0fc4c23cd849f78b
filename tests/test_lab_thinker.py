"""The lab thinker (`--model lab-think`, reasoning/lab/thinker.py) on the real committed weights: it
thinks, works each step's digits in the digit-aligned layout before stating it, and answers after
`</think>`; the three thinking budgets act on it (the minimum adds "Wait" nodes and a pass of checks,
the maximum cuts at T, no-think gives an empty block); the trace generator's digit work, checks and
repairs are right and its slips masked; the CLI runs it end to end."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reasoning.backends import MODELS, load_model
from reasoning.config import SearchConfig
from reasoning.lab import data
from reasoning.lab.thinker import AGAIN, TraceConfig, check_line, long_division, scratch, thinking_trace
from reasoning.problems import load_problems
from reasoning.strategies import get_strategy
from reasoning.thinking import THINK_CLOSE, THINK_OPEN
from reasoning.thinking_budget import EMPTY_BLOCK, MAX_WAITS
from reasoning.tree import Tree

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, db: Path):
    env = {**os.environ, "THINKTRACE_DB": str(db), "THINKTRACE_THREADS": os.environ.get("THINKTRACE_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def thinker():
    return load_model("lab-think")


@pytest.fixture(scope="module")
def problem():
    return load_problems("arith:2", limit=1, seed=0)[0]


def solve(lm, problem, strategy="cot", **knobs):
    tree = Tree(problem.question)
    outcome = get_strategy(strategy)(problem, lm, None, SearchConfig(**knobs), tree)
    return outcome, tree, tree.nodes[outcome.node]


def test_it_is_registered_as_a_thinking_model_with_one_token_per_tag(thinker):
    assert MODELS["lab-think"].thinking and not MODELS["lab"].thinking
    for tag in (THINK_OPEN, THINK_CLOSE):
        assert len(thinker.tokenizer(tag, add_special_tokens=False).input_ids) == 1


DIGIT_WORK = re.compile(r"(\d{4}[-+*]\d{4}=\d{5}|\d+/\d=\dr\d), so ")


def test_it_thinks_works_the_digits_of_its_steps_and_answers_after_thinking(thinker, problem):
    outcome, tree, leaf = solve(thinker, problem)
    path = tree.path(leaf)
    phases = [n.meta["phase"] for n in path]
    assert phases[0] == "think" and phases[-1] == "answer" and phases == sorted(phases, key=["think", "answer"].index)
    assert any(DIGIT_WORK.search(n.text) for n in path) and leaf.meta["thinking_closed"]
    assert leaf.meta["think_tokens"] > 20 and leaf.meta["answer_tokens"] > 0 and outcome.answer is not None


def test_the_minimum_adds_wait_nodes_until_t_thinking_tokens(thinker, problem):
    _, natural_tree, natural = solve(thinker, problem)
    minimum = natural.meta["think_tokens"] + 60
    _, tree, leaf = solve(thinker, problem, think_tokens=minimum)
    forced = [n for n in tree.path(leaf) if n.meta.get("forced")]
    assert forced and all(n.text.startswith("Wait") and n.meta["turn"] == "Wait" for n in forced)
    assert forced[0].text.startswith(AGAIN) or any(n.text.startswith("Check: ") for n in tree.path(leaf))  # a pass of checks
    assert leaf.meta["forced_waits"] == len(forced)
    assert leaf.meta["think_tokens"] >= minimum or len(forced) == MAX_WAITS
    assert leaf.meta["thinking_closed"] and leaf.answer is not None


def test_the_maximum_cuts_thinking_at_t_and_the_answer_follows(thinker, problem):
    _, tree, leaf = solve(thinker, problem, max_think_tokens=24)
    think = [n for n in tree.path(leaf) if n.meta["phase"] == "think"]
    assert leaf.meta["think_tokens"] == 24 and leaf.meta["thinking_cut"] and think[-1].meta["cut"]
    assert any(n.meta["phase"] == "answer" for n in tree.path(leaf)) and leaf.answer is not None


def test_no_think_gives_an_empty_block_and_a_direct_answer(thinker, problem):
    _, tree, leaf = solve(thinker, problem, think=False)
    assert leaf.meta["no_think"] and leaf.meta["think_tokens"] == 0
    assert all(n.meta["phase"] == "answer" for n in tree.path(leaf)) and leaf.answer is not None
    [[c]] = thinker.complete([thinker.prompt(problem.question) + EMPTY_BLOCK], n=1, max_new_tokens=300, temperature=0.0)
    assert THINK_OPEN not in c.text  # it answers; it does not open a second block


def _rev_int(text: str) -> int:
    return int(text[::-1])


def test_digit_work_and_short_division_are_right():
    rng = random.Random(0)
    for _ in range(300):
        a, b = rng.randint(2, 999), rng.randint(2, 9)
        stages, q, r = long_division(a, b)
        assert (q, r) == divmod(a, b)
        assert all(int(n) // b == int(d) and int(n) % b == int(m)
                   for n, d, m in re.findall(r"(\d+)/\d=(\d)r(\d)", stages))
        for op, x, y in (("+", a, rng.randint(2, 999)), ("-", a + b, b), ("*", a, b)):
            left, right = scratch(op, x, y).split("=")
            u, v = left.split(op)
            assert (_rev_int(u), _rev_int(v), _rev_int(right)) == (x, y, {"+": x + y, "-": x - y, "*": x * y}[op])


def test_training_traces_mask_slips_and_repair_them_in_the_pass_of_checks():
    rng = random.Random(3)
    problems = [data.training_problem(i, 4, 1) for i in range(40)]
    traces = [thinking_trace(p, rng, TraceConfig(second_pass=1, planted=1, cut=0, no_think=0)) for p in problems]
    assert all(t.text.startswith(THINK_OPEN) and THINK_CLOSE in t.text and AGAIN in t.text for t in traces)
    assert sum(bool(t.masked) for t in traces) >= 30 and sum(", not " in t.text for t in traces) >= 30
    for p, t in zip(problems, traces):
        assert t.text.rstrip().endswith(f"The answer is {p.answer}.\n\n</s>".rstrip())  # the checks repaired every slip
        for start, end in t.masked:  # a masked span is a slipped result (or its digit work) in the text
            assert t.text[start:end].strip()
        for x, sym, y, z, said in re.findall(r"Check: [^:]*: (\d{4})([-+*])(\d{4})=(\d{5}): (\d+)", t.text):
            assert _rev_int(z) == {"+": _rev_int(x) + _rev_int(y), "-": _rev_int(x) - _rev_int(y),
                                   "*": _rev_int(x) * _rev_int(y)}[sym] == int(said)  # checks are always right
    plain = [thinking_trace(p, random.Random(i), TraceConfig(slip=0, second_pass=0, cut=0, no_think=0))
             for i, p in enumerate(problems)]
    assert all(not t.masked and AGAIN not in t.text and f"So the answer is {p.answer}." in t.text
               for p, t in zip(problems, plain))
    line, ok = check_line("-", 372, 49, 323)
    assert ok and line == "Check: 372 - 49 = 323: 3230+9400=27300: 372, right."  # a difference checked by a sum
    assert check_line("+", 93, 3, 96) == ("Check: 93 + 3 = 96: 6900-3000=39000: 93, right.", True)
    assert check_line("*", 7, 12, 85) == ("Check: 7 * 12 = 85: 8/7=1r1, 15/7=2r1: 12r1, not 12.", False)  # short division
    assert check_line("/", 96, 4, 24) == ("Check: 96 / 4 = 24: 4200*4000=69000: 96, right.", True)


def test_the_cli_runs_the_thinker_with_a_thinking_budget(tmp_path):
    db = tmp_path / "runs.db"
    proc = cli("run", "--strategy", "cot", "--model", "lab-think", "--dataset", "arith:2", "--limit", "2",
               "--max-think-tokens", "32", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    shown = json.loads(cli("show", run["id"], "--json", db=db).stdout)
    assert shown["model"].startswith("ThinkTrace lab thinker") and shown["problems_done"] == 2
    bad = cli("run", "--strategy", "cot", "--model", "lab-think", "--max-think-tokens", "-1", db=tmp_path / "b.db")
    assert bad.returncode == 2 and "--max-think-tokens must be >= 0" in bad.stderr and not (tmp_path / "b.db").exists()


def test_lab_commands_refuse_bad_thinker_settings_in_one_line(tmp_path):
    for args, message in (
        (("lab", "eval", "--thinker", "--levels", "3,9"), "--levels must be between 1 and 5"),
        (("lab", "train", "--thinker-only", "--prm-only", "--out", str(tmp_path)), "exclude each other"),
        (("lab", "train", "--thinker-only", "--out", str(tmp_path)), "--thinker-only needs a saved reasoner"),
        (("lab", "train", "--thinker-steps", "0", "--out", str(tmp_path)), "--thinker-steps must be at least 1"),
    ):
        proc = cli(*args, db=tmp_path / "x.db")
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert list(tmp_path.iterdir()) == []

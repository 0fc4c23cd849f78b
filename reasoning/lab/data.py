"""Training text for the lab pair, from the repo's own problem generator (reasoning/problems.py).

Each generated problem carries one canonical solution, one operation per step ("Tom starts with 5
apples and buys 3 more, so he has 5 + 3 = 8 apples."). A single canonical path makes every sample
of the trained model agree with its greedy answer, so the training text varies the path: two step
wordings and both operand orders for + and *. All variants keep one operation per step, the blank
line between steps and "The answer is N." last, then EOS.

Training problems come from seeds >= TRAIN_SEED_BASE and never repeat a question of the built-in
evaluation sets (seed 0, the first EVAL_HOLDOUT problems per level), which `load_problems` uses.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from reasoning.problems import EQUATION_RE, MAX_DIFFICULTY, MIN_DIFFICULTY, generate_arith
from reasoning.types import DEFAULT_DELIMITER, Problem

from reasoning.lab.tokenizer import EOS, prompt_text

TRAIN_SEED_BASE = 1_000_000
EVAL_HOLDOUT = 1000  # evaluation problems per level that training never sees

_CANONICAL_RE = re.compile(
    r"^(?P<name>.+?) (?:starts with|has) (?P<a>\d+) (?P<unit>\w+) and (?P<action>.+), "
    r"so (?P<pron>\w+) has (?P=a) (?P<op>[-+*/]) (?P<b>\d+) = (?P<c>\d+) (?P=unit)\.$")
ANSWER_RE = re.compile(r"The answer is (\d+)\.")
COMMUTATIVE = {"+", "*"}


@dataclass(frozen=True)
class Op:
    """One step of a problem's canonical solution: a op b = c."""

    a: int
    op: str
    b: int
    c: int


def canonical_ops(problem: Problem) -> list[Op]:
    """The problem's operations, read back from its canonical solution."""
    return [Op(int(a), op, int(b), int(c)) for step in problem.meta["solution"][:-1]
            for a, op, b, c in [EQUATION_RE.search(step).groups()]]


def varied_solution(problem: Problem, rng: random.Random) -> list[str]:
    """One of the valid solution paths of a generated problem, as steps (no delimiters)."""
    short = rng.random() < 0.5  # wording for the whole path, so a path reads consistently
    steps = []
    for step in problem.meta["solution"][:-1]:
        m = _CANONICAL_RE.match(step)
        a, op, b = m["a"], m["op"], m["b"]
        if op in COMMUTATIVE and rng.random() < 0.3:
            a, b = b, a
        expr = f"{a} {op} {b} = {m['c']} {m['unit']}"
        if short:
            steps.append(f"{m['name']} {m['action']}: {expr}.")
        else:
            had = "starts with" if not steps else "has"
            steps.append(f"{m['name']} {had} {m['a']} {m['unit']} and {m['action']}, so {m['pron']} has {expr}.")
    return steps + [problem.meta["solution"][-1]]


def completion_text(steps: list[str], delimiter: str = DEFAULT_DELIMITER) -> str:
    """What the reasoner writes after the prompt: every step ends with the delimiter (as generation
    with stop=[delimiter] leaves it), then EOS."""
    return "".join(step + delimiter for step in steps) + EOS


@lru_cache(maxsize=1)
def eval_questions() -> frozenset[str]:
    return frozenset(p.question for d in range(MIN_DIFFICULTY, MAX_DIFFICULTY + 1)
                     for p in generate_arith(d, EVAL_HOLDOUT, seed=0))


def batch_level(step: int, levels: tuple[int, ...], seed: int) -> int:
    """Every batch holds one level, so its rows have similar lengths and padding wastes little."""
    return random.Random(f"level:{seed}:{step}").choice(levels)


def training_problem(index: int, level: int, seed: int) -> Problem:
    """Training problem `index` of a run: its generator seed depends only on (seed, index), so the
    stream is reproducible and can be read from any step. Questions of the evaluation sets are
    skipped (level 1 has few distinct problems, so collisions happen)."""
    for attempt in range(100):
        problem = generate_arith(level, 1, seed=TRAIN_SEED_BASE + seed * 10_000_000 + index * 100 + attempt)[0]
        if problem.question not in eval_questions():
            return problem
    raise RuntimeError("could not find a training problem outside the evaluation sets")


def training_example(index: int, level: int, seed: int) -> tuple[str, str]:
    """(prompt, completion) text for the reasoner."""
    problem = training_problem(index, level, seed)
    rng = random.Random(f"path:{seed}:{index}")
    return prompt_text(problem.question), completion_text(varied_solution(problem, rng))


def corpus_for_tokenizer(n: int = 3000, seed: int = 0) -> list[str]:
    """Text the BPE merges are learnt from: prompts and completions of all levels."""
    levels = range(MIN_DIFFICULTY, MAX_DIFFICULTY + 1)
    return ["".join(training_example(i, levels[i % len(levels)], seed)) for i in range(n)]

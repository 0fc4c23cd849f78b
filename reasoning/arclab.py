"""arclab: ARC-like tasks small enough for a laptop CPU, for test-time training (issue 19).

A task is a hidden program applied to rows of coloured cells (1-D grids: one row of 4-9 cells,
colours 1-9 on background 0): 3-5 demonstration pairs show it, and the answer is its output on a
test input. Programs are one primitive or a composition of two (the first applied first):

    reflect       the row reversed
    shift(k)      cyclic shift by k cells (k = -2, -1, 1, 2; positive is to the right)
    recolour(a,b) every cell of colour a becomes b
    fill(c)       the background between the first and last coloured cell becomes c
    count         one cell per coloured cell of the input, all in the colour of the leftmost one
    crop          the background at both ends removed

Compositions are split by their pair of primitive kinds: HELD_OUT pairs never occur in `arclab:train`
(nor in the lab-arc model's training stream); `arclab:test` holds only them, so in-context learning
must compose two known primitives in a way never seen, which is where training on the task's own
demonstrations (test-time training) can help. Pairs that commute as tasks (reflect and fill, shift
and recolour) are held out in both orders, so no held-out task is a trained one written backwards.

Every task is a function of (split, seed, index): `arclab:test` with seed 0 is the evaluation set;
the model trains on seed 1 of the train split (`task(..., seed=1)`), never on evaluation tasks.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from reasoning import fewshot
from reasoning.grids import Grid
from reasoning.types import Problem

Row = tuple[int, ...]
KINDS = ("reflect", "shift", "recolour", "fill", "count", "crop")
# Held-out pairs (first, then): never in training; commuting pairs held out in both orders.
HELD_OUT = frozenset({("reflect", "fill"), ("fill", "reflect"), ("shift", "recolour"), ("recolour", "shift"),
                      ("recolour", "count"), ("fill", "crop"), ("crop", "shift")})
# count leaves one colour: anything after it is count again (or a recolouring of it), so it only ends;
# crop then count is count.
PAIRS = tuple((a, b) for a in KINDS for b in KINDS if a != b and a != "count" and (a, b) != ("crop", "count"))
TRAIN_PAIRS = tuple(p for p in PAIRS if p not in HELD_OUT)
TEST_PAIRS = tuple(p for p in PAIRS if p in HELD_OUT)
SPLITS = ("train", "test")
DEFAULT_COUNT = 200
MIN_LEN, MAX_LEN = 4, 9


@dataclass(frozen=True)
class Step:
    kind: str
    params: tuple[int, ...] = ()

    def __call__(self, row: Row) -> Row:
        return _APPLY[self.kind](row, *self.params)

    def __str__(self) -> str:
        return self.kind + (f"({','.join(map(str, self.params))})" if self.params else "")


def _shift(row: Row, k: int) -> Row:
    k %= len(row)
    return row[-k:] + row[:-k] if k else row


def _fill(row: Row, c: int) -> Row:
    coloured = [i for i, v in enumerate(row) if v]
    if not coloured:
        return row
    lo, hi = coloured[0], coloured[-1]
    return tuple(c if lo < i < hi and v == 0 else v for i, v in enumerate(row))


def _crop(row: Row) -> Row:
    coloured = [i for i, v in enumerate(row) if v]
    return row[coloured[0]:coloured[-1] + 1] if coloured else row


_APPLY: dict[str, Callable[..., Row]] = {
    "reflect": lambda row: row[::-1],
    "shift": _shift,
    "recolour": lambda row, a, b: tuple(b if v == a else v for v in row),
    "fill": _fill,
    "count": lambda row: (next((v for v in row if v), 0),) * max(1, sum(1 for v in row if v)),
    "crop": _crop,
}


def run(program: tuple[Step, ...], row: Row) -> Row:
    for step in program:
        row = step(row)
    return row


def describe(program: tuple[Step, ...]) -> str:
    return " then ".join(map(str, program))


def _params(kind: str, palette: list[int], rng: random.Random) -> tuple[int, ...]:
    if kind == "shift":
        return (rng.choice((-2, -1, 1, 2)),)
    if kind == "recolour":
        a = rng.choice(palette)
        return (a, rng.choice([c for c in range(1, 10) if c != a]))
    if kind == "fill":
        return (rng.choice([c for c in range(1, 10) if c not in palette] or list(range(1, 10))),)
    return ()


def _input(rng: random.Random, palette: list[int], must: int | None) -> Row:
    """A row with 2+ coloured cells, at least one background cell between them or at the ends, and
    colour `must` present when given (recolour must have something to recolour)."""
    while True:
        n = rng.randint(MIN_LEN, MAX_LEN)
        row = tuple(rng.choice(palette) if rng.random() < 0.5 else 0 for _ in range(n))
        coloured = sum(1 for v in row if v)
        if 2 <= coloured < n and (must is None or must in row):
            return row


def _informative(program: tuple[Step, ...], pairs: list[tuple[Row, Row]]) -> bool:
    """The pairs show the whole program: no output equals its input, and for a composition, neither
    step alone gives the same outputs (else the task is really a single primitive)."""
    if any(i == o for i, o in pairs):
        return False
    if len(program) == 2:
        for step in program:
            if all(step(i) == o for i, o in pairs):
                return False
    return True


def make_task(kinds: tuple[str, ...], rng: random.Random) -> tuple[tuple[Step, ...], list[tuple[Row, Row]]]:
    """A program of these kinds and 4-6 (input, output) pairs of it (the last one is the test)."""
    for _ in range(200):
        palette = rng.sample(range(1, 10), rng.randint(2, 4))
        program = tuple(Step(k, _params(k, palette, rng)) for k in kinds)
        must = next((s.params[0] for s in program if s.kind == "recolour"), None)
        if must is not None and program[0].kind != "recolour":
            must = None  # a recolour after another step: its colour may only appear after that step
        pairs = []
        for _ in range(rng.randint(4, 6)):
            row = _input(rng, palette, must)
            pairs.append((row, run(program, row)))
        if _informative(program, pairs) and len({p[0] for p in pairs}) == len(pairs):
            return program, pairs
    raise RuntimeError(f"no informative task of kinds {kinds}")  # never seen: 200 tries


def task_kinds(split: str, index: int, seed: int) -> tuple[str, ...]:
    """The primitive kinds of task `index`: the test split cycles through the held-out pairs; the
    train split gives a single primitive one time in four, else a training pair."""
    rng = random.Random(f"arclab-kinds:{split}:{seed}:{index}")
    if split == "test":
        return TEST_PAIRS[index % len(TEST_PAIRS)]
    if rng.random() < 0.25:
        return (rng.choice(KINDS),)
    return rng.choice(TRAIN_PAIRS)


def task(split: str, index: int, seed: int) -> tuple[tuple[Step, ...], list[tuple[Row, Row]]]:
    rng = random.Random(f"arclab:{split}:{seed}:{index}")
    return make_task(task_kinds(split, index, seed), rng)


def _grid(row: Row) -> Grid:
    return (row,)


def problem(split: str, index: int, seed: int = 0) -> Problem:
    program, pairs = task(split, index, seed)
    demos, (test_in, test_out) = pairs[:-1], pairs[-1]
    return fewshot.problem(f"arclab-{split}-s{seed}-{index}", [(_grid(i), _grid(o)) for i, o in demos],
                           _grid(test_in), _grid(test_out), f"arclab:{split}", difficulty=len(program),
                           program=describe(program), composition="+".join(s.kind for s in program))


def load(split: str, count: int | None = None, seed: int = 0) -> list[Problem]:
    return [problem(split, i, seed) for i in range(count or DEFAULT_COUNT)]


def training_text(index: int, seed: int) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The lab-arc model's training stream: a train-split task as one text with its test output, and
    the spans of every output (fewshot.render)."""
    program, pairs = task("train", index, seed)
    demos, (test_in, test_out) = pairs[:-1], pairs[-1]
    return fewshot.render([(_grid(i), _grid(o)) for i, o in demos], _grid(test_in), _grid(test_out))


def arc_json(split: str, index: int, seed: int = 0, tests: int = 1) -> dict:
    """Task `index` in ARC-AGI's JSON shape ({"train": [...], "test": [...]}, grids as lists of rows),
    with `tests` test pairs (the last ones generated): for other tools, and the repo's ARC fixtures."""
    program, pairs = task(split, index, seed)
    tests = max(1, min(tests, len(pairs) - 2))
    as_pair = lambda i, o: {"input": [list(i)], "output": [list(o)]}  # noqa: E731
    return {"train": [as_pair(*p) for p in pairs[:-tests]], "test": [as_pair(*p) for p in pairs[-tests:]]}

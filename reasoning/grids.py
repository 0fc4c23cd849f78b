"""Grids: the answers of ARC-style tasks (a task is a few demonstration input/output pairs and a test
input; the answer is the test output). One place for how a grid is checked, written as text, read
back from a model's completion, and transformed by the invertible augmentations test-time training
votes over (Akyürek et al. 2024: the dihedral group of the square and colour permutations).

A grid is a tuple of rows of colours 0-9 (0 is the background, as in ARC). As text it is its rows of
digits, each row ended by a newline: "012\\n340\\n". The trailing newline makes a grid answer
unmistakable for a number ("0120" would equal "120" as a number; "0120\\n" compares exactly):
`reasoning.answers` compares grid answers character for character.
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from reasoning.errors import UserError

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30  # ARC's largest grids are 30 x 30
COLOURS = 10
ANSWER_FORMAT = "grid"  # Problem.meta["answer_format"] of a task whose answer is a grid
GRID_TEXT_RE = re.compile(r"(?:[0-9]+\n)+")  # a grid answer: digit rows, each ended by a newline


def check_grid(value: Any, where: str) -> Grid:
    """A grid from JSON (a list of equal-length lists of integers 0-9), or one clear UserError."""
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: a grid must be a non-empty list of rows")
    if len(value) > MAX_SIDE:
        raise UserError(f"{where}: {len(value)} rows; a grid has at most {MAX_SIDE}")
    rows = []
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise UserError(f"{where}: row {r} must be a non-empty list of colours 0-9")
        if len(row) != len(value[0]):
            raise UserError(f"{where}: row {r} has {len(row)} cells, row 0 has {len(value[0])} (grids are rectangular)")
        if len(row) > MAX_SIDE:
            raise UserError(f"{where}: {len(row)} columns; a grid has at most {MAX_SIDE}")
        for cell in row:
            if type(cell) is not int or not 0 <= cell < COLOURS:
                raise UserError(f"{where}: row {r} holds {cell!r}; cells are integers 0-9")
        rows.append(tuple(row))
    return tuple(rows)


def format_grid(grid: Grid) -> str:
    """The grid as answer text: digit rows, each ended by a newline."""
    return "".join("".join(map(str, row)) + "\n" for row in grid)


def is_grid_text(value: str | None) -> bool:
    return value is not None and GRID_TEXT_RE.fullmatch(value) is not None


def parse_grid(text: str) -> Grid | None:
    """The first grid written in `text`: its first run of consecutive lines made only of digits (and
    surrounding spaces), when they are all the same length; None when there is none or it is ragged."""
    rows: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line and line.isdigit() and line.isascii():
            rows.append(line)
        elif rows:
            break
    if not rows or len({len(r) for r in rows}) != 1 or len(rows) > MAX_SIDE or len(rows[0]) > MAX_SIDE:
        return None
    return tuple(tuple(int(c) for c in row) for row in rows)


def extract_grid_answer(text: str) -> str | None:
    """A completion's answer on a grid task: its first grid as answer text (None when it wrote none)."""
    grid = parse_grid(text)
    return None if grid is None else format_grid(grid)


def grid_of(answer: str | None) -> Grid | None:
    """A grid answer's grid back (None for anything else)."""
    return parse_grid(answer) if is_grid_text(answer) else None


# --- augmentations -------------------------------------------------------------------------------

def _rot90(g: Grid) -> Grid:  # clockwise
    return tuple(zip(*g[::-1]))


def _transpose(g: Grid) -> Grid:
    return tuple(zip(*g))


# The dihedral group of the square: (name, forward, inverse).
_GEOMETRIC: dict[str, tuple[Callable[[Grid], Grid], Callable[[Grid], Grid]]] = {
    "identity": (lambda g: g, lambda g: g),
    "rot90": (_rot90, lambda g: _rot90(_rot90(_rot90(g)))),
    "rot180": (lambda g: _rot90(_rot90(g)), lambda g: _rot90(_rot90(g))),
    "rot270": (lambda g: _rot90(_rot90(_rot90(g))), _rot90),
    "flip_h": (lambda g: tuple(r[::-1] for r in g), lambda g: tuple(r[::-1] for r in g)),
    "flip_v": (lambda g: g[::-1], lambda g: g[::-1]),
    "transpose": (_transpose, _transpose),
    "antitranspose": (lambda g: _rot90(_rot90(_transpose(g))), lambda g: _transpose(_rot90(_rot90(g)))),
}
# Those that keep a single row a single row (1-D tasks: a model that only ever saw rows).
ROW_SAFE = ("identity", "flip_h")


@dataclass(frozen=True)
class Augmentation:
    """An invertible map of grids: a geometric transformation then a colour permutation (colour c
    becomes perm[c]; the background 0 stays 0)."""

    geometric: str = "identity"
    perm: tuple[int, ...] = tuple(range(COLOURS))

    @property
    def name(self) -> str:
        colours = "" if self.is_colour_identity else " colours " + "".join(map(str, self.perm))
        return self.geometric + colours

    @property
    def is_colour_identity(self) -> bool:
        return self.perm == tuple(range(COLOURS))

    def forward(self, grid: Grid) -> Grid:
        g = _GEOMETRIC[self.geometric][0](grid)
        return tuple(tuple(self.perm[c] for c in row) for row in g)

    def inverse(self, grid: Grid) -> Grid:
        back = [0] * COLOURS
        for c, p in enumerate(self.perm):
            back[p] = c
        g = tuple(tuple(back[c] for c in row) for row in grid)
        return _GEOMETRIC[self.geometric][1](g)

    def to_dict(self) -> dict:
        return {"geometric": self.geometric, "perm": list(self.perm)}


GEOMETRIC = tuple(_GEOMETRIC)


def augmentations(count: int, grids: Iterable[Grid], seed: int, geometric: bool = True,
                  colours: bool = True) -> list[Augmentation]:
    """`count` distinct augmentations for a task whose grids are `grids`, identity first: the
    geometric ones that fit the task (only those that keep rows rows when every grid is one row),
    each with the identity colours first and then random permutations of colours 1-9, in a fixed order
    for a seed. Fewer come back when the task has fewer distinct ones."""
    grids = list(grids)
    rows_only = all(len(g) == 1 for g in grids)
    shapes = [name for name in GEOMETRIC if not rows_only or name in ROW_SAFE] if geometric else ["identity"]
    rng = random.Random(seed)
    identity = tuple(range(COLOURS))
    perms = [identity]
    if colours:
        for _ in range(count):
            rest = list(range(1, COLOURS))
            rng.shuffle(rest)
            perm = (0, *rest)
            if perm not in perms:
                perms.append(perm)
    out: list[Augmentation] = []
    # Round robin: all shapes with identity colours, then all shapes with the first permutation, ...
    for perm, shape in itertools.product(perms, shapes):
        aug = Augmentation(shape, perm)
        if aug not in out:
            out.append(aug)
        if len(out) == count:
            break
    return out


def augmentation_from_dict(data: dict) -> Augmentation:
    return Augmentation(data["geometric"], tuple(data["perm"]))

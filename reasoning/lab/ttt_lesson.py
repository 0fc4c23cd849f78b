"""The Learn page's lesson "learning at test time", free of Streamlit: one held-out arclab task, the
lab-arc model's in-context guess, test-time training on the task's own demonstrations with the loss
reported step by step, then the augmented predictions and their vote.

Everything runs through the ttt strategy itself (reasoning/strategies/ttt.py: the same leave-one-out
set, augmentations, training, inversion and vote as `--strategy ttt`); the lesson only passes a
callback down to reasoning.finetune.adapted so the page can draw each step's loss as it comes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from reasoning.types import Outcome, Problem

DATASET = "arclab:test"  # held-out compositions: lab-arc never trained on any of them
STEPS = 24  # the ttt strategy's default training steps
PREDICTIONS = 8  # augmented predictions voted over
MAX_NEW_TOKENS = 24  # a row of at most 9 cells and the blank line after it


@dataclass
class Attempt:
    """One lesson step's result: the tree the strategy grew (root, then one node per prediction),
    its outcome (answer, votes, ARC's two attempts) and what training did (root meta "ttt")."""

    nodes: list
    outcome: Outcome
    gold: str | None

    @property
    def training(self) -> dict:
        return self.nodes[0].meta.get("ttt") or {}

    @property
    def correct(self) -> bool:
        return self.outcome.answer is not None and self.outcome.answer == self.gold


def task(index: int) -> Problem:
    """Task `index` (0-based) of arclab:test."""
    from reasoning.problems import load_problems

    return load_problems(DATASET, limit=index + 1)[index]


class _Live:
    """The model, with each training step reported to `on_step(step, loss)` (the backend passes the
    training settings on to reasoning.finetune.adapted)."""

    def __init__(self, lm, on_step: Callable[[int, float], None] | None):
        self.lm, self.on_step = lm, on_step

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def adapt_complete(self, texts, prompts, *, train, **kwargs):
        return self.lm.adapt_complete(texts, prompts, train={**train, "on_step": self.on_step}, **kwargs)


def solve(lm, problem: Problem, steps: int, n: int, on_step: Callable[[int, float], None] | None = None) -> Attempt:
    """The ttt strategy on one task: `steps` training steps (0: in context only), then `n` augmented
    predictions mapped back and voted on."""
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.tree import Tree

    tree = Tree(problem.question)
    cfg = SearchConfig(n=n, ttt_steps=steps, max_new_tokens=MAX_NEW_TOKENS)
    outcome = get_strategy("ttt")(problem, _Live(lm, on_step), None, cfg, tree)
    return Attempt(tree.nodes, outcome, problem.answer)


def in_context(lm, problem: Problem) -> Attempt:
    """The model's guess from the demonstrations alone: greedy, no training, the task as given."""
    return solve(lm, problem, 0, 1)

"""Chain-of-thought: one greedy path. The baseline every other strategy must beat."""
from __future__ import annotations

from reasoning.config import THINKING_KNOBS, SearchConfig
from reasoning.strategies import FIXED, Strategy
from reasoning.strategies.chains import sample_chains, score_leaves
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    [leaf] = sample_chains(problem, lm, tree, n=1, temperature=0.0, cfg=cfg)
    score_leaves(problem, verifier, tree, [leaf], cfg.aggregate)
    tree.select(leaf)
    return Outcome(leaf.answer, leaf.seq, {leaf.answer: 1} if leaf.answer is not None else {})


STRATEGY = Strategy("cot", "one greedy chain of thought", search, knobs=("max_new_tokens", *THINKING_KNOBS), budget=(), kind=FIXED,
                    order=0)

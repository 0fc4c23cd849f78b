"""Diverse verifier tree search (search-and-learn's `dvts`): N/M independent subtrees, each a greedy
beam of width M, so the verifier cannot collapse all the budget onto one early favourite.

Parameters: N = cfg.n, M = cfg.beam_width (N/M subtrees), K = cfg.lookahead, cfg.max_steps,
cfg.max_step_tokens, cfg.select, cfg.aggregate.

Each iteration, in one batched call, every growing subtree's single kept leaf (the root, at
iteration 0, so subtrees part at their first step) gets M children; one verifier call scores them;
each subtree keeps its own best child (ties: earlier node) and prunes the others. Selection never
compares nodes of different subtrees. A subtree stops when its best child ends its path; that
last expansion's finished children (the best one and any sibling that also ended) are the subtree's
leaves, as search-and-learn returns all M children of the last expansion (unfinished siblings have
no answer, so they are pruned instead). The answer is cfg.select over the union of the subtrees'
leaves. Every node carries meta["subtree"].
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from reasoning.config import SearchConfig
from reasoning.strategies import NEEDS, Strategy
from reasoning.strategies.beam_search import check_config
from reasoning.strategies.chains import vote
from reasoning.strategies.steps import best_first, expand, roll_out, score
from reasoning.tree import Tree
from reasoning.types import PRUNED, TERMINAL, LanguageModel, Node, Outcome, Problem, Verifier

__all__ = ["check_config", "search"]


@dataclass(frozen=True)
class Subtree:
    index: int
    leaf: Node  # its kept leaf: the root until its first step
    leaves: tuple[Node, ...] = ()  # finished leaves, once it has stopped

    @property
    def growing(self) -> bool:
        return not self.leaves


def search(problem: Problem, lm: LanguageModel, verifier: Verifier, cfg: SearchConfig, tree: Tree) -> Outcome:
    check_config(cfg)
    subtrees = [Subtree(i, tree.root) for i in range(cfg.n // cfg.beam_width)]
    iteration = 0
    while any(s.growing for s in subtrees):
        growing = [s for s in subtrees if s.growing]
        children = grow(problem, lm, tree, cfg, growing, iteration)
        score(problem, verifier, tree, cfg, children, roll_out(problem, lm, tree, cfg, children))
        chosen = {s.index: select(tree, s, children[k * cfg.beam_width:(k + 1) * cfg.beam_width], iteration)
                  for k, s in enumerate(growing)}
        subtrees = [chosen.get(s.index, s) for s in subtrees]
        iteration += 1
    leaves = [leaf for s in subtrees for leaf in s.leaves]
    outcome = vote(leaves, cfg.select)
    tree.select(tree.nodes[outcome.node])
    outcome.meta = {"iterations": iteration, "subtrees": len(subtrees)}
    return outcome


STRATEGY = Strategy("dvts", "N/M independent greedy subtrees of width M (diversity)", search,
                    knobs=("n", "beam_width", "max_steps", "max_step_tokens", "lookahead", "temperature", "aggregate",
                           "last_step_to_eos"),
                    verifier=NEEDS, check=check_config, order=40, continues=True)


def grow(problem: Problem, lm: LanguageModel, tree: Tree, cfg: SearchConfig, growing: list[Subtree],
         iteration: int) -> list[Node]:
    return expand(problem, lm, tree, cfg, [s.leaf for s in growing], [cfg.beam_width] * len(growing), iteration,
                  meta=[{"subtree": s.index} for s in growing])


def select(tree: Tree, subtree: Subtree, children: list[Node], iteration: int) -> Subtree:
    """Keep the subtree's best child; if it ended the path, the subtree stops with its finished children."""
    best = best_first(children)[0]
    stops = best.status == TERMINAL
    for child in children:
        if child is not best and not (stops and child.status == TERMINAL):
            tree.update(child, status=PRUNED, iteration=iteration)
    if not stops:
        return replace(subtree, leaf=best)
    return replace(subtree, leaf=best, leaves=tuple(c for c in children if c.status == TERMINAL))

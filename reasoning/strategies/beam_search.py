"""Beam search over steps, guided by a verifier (search-and-learn's `beam_search`).

Parameters: N = cfg.n candidates per iteration, M = cfg.beam_width, K = cfg.lookahead (default 0:
no rollouts), cfg.max_steps, cfg.max_step_tokens, cfg.select, cfg.aggregate.

Each iteration is expand -> score -> select:
- expand: iteration 0 samples N first steps from the root; later, the N/M kept beams get M children
  each (N candidates). When fewer than N/M beams are alive, the N children are spread round-robin
  over them, as search-and-learn refills its N beams by duplicating the survivors.
- score: one verifier call over all candidates; with K > 0 each unfinished candidate is first rolled
  out K greedy steps and ranked by the rolled-out path's aggregated score (meta["lookahead_score"]).
- select: finished (terminal) candidates are set aside and never expanded; of the others the top N/M
  (ties: earlier node) stay `kept`, the rest become `pruned` at this iteration.
It stops when no beam is alive (a step at depth max_steps always ends its path). The answer is
chosen by cfg.select over the first N finished beams (search-and-learn's `completed_beams[:n]`).

By default a path ends at max_steps (possibly without an answer: the tree shows it). search-and-learn's
semantics are knobs (`--preset search-and-learn` sets them): `last_step_to_eos` writes the step at
max_steps to the end of the text, as its last iteration does, and `filter_duplicates` prunes a
candidate whose whole path repeats an earlier candidate's before selection. search-and-learn pads
fewer than N finished beams to N by duplicating them; its loop, like this one, finishes at least N
(every candidate of the last iteration ends its path), so the padding never changes a vote and is
not done here. What else differs: docs/search-and-learn.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import NEEDS, Strategy
from reasoning.strategies.chains import vote
from reasoning.strategies.steps import best_first, expand, roll_out, score
from reasoning.tree import Tree
from reasoning.types import PRUNED, TERMINAL, LanguageModel, Node, Outcome, Problem, Verifier


@dataclass(frozen=True)
class Beams:
    """The search state between iterations."""

    alive: tuple[Node, ...]  # kept leaves still growing, in creation order
    finished: tuple[Node, ...] = ()  # terminal candidates, in the order they finished
    iteration: int = 0


def check_config(cfg: SearchConfig) -> None:
    cfg.validate()
    if cfg.beam_width > cfg.n:
        raise UserError(f"--beam-width ({cfg.beam_width}) cannot exceed --n ({cfg.n})")
    if cfg.n % cfg.beam_width:
        raise UserError(f"--n ({cfg.n}) must be a multiple of --beam-width ({cfg.beam_width}): "
                        f"N/M beams of M children each make the N candidates of an iteration")


def search(problem: Problem, lm: LanguageModel, verifier: Verifier, cfg: SearchConfig, tree: Tree) -> Outcome:
    check_config(cfg)
    beams = Beams(alive=(tree.root,))
    while beams.alive:
        candidates = grow(problem, lm, tree, cfg, beams)
        score(problem, verifier, tree, cfg, candidates, roll_out(problem, lm, tree, cfg, candidates))
        beams = select(tree, cfg, beams, candidates)
    outcome = vote(list(beams.finished[: cfg.n]), cfg.select)
    tree.select(tree.nodes[outcome.node])
    outcome.meta = {"iterations": beams.iteration, "finished": len(beams.finished)}
    return outcome


STRATEGY = Strategy("beam_search", "step-level beam search: keep the top N/M of N scored steps (--beam-width M)",
                    search, knobs=("n", "beam_width", "max_steps", "max_step_tokens", "lookahead", "temperature",
                                   "aggregate", "last_step_to_eos", "filter_duplicates"),
                    verifier=NEEDS, check=check_config, order=30, continues=True)


def grow(problem: Problem, lm: LanguageModel, tree: Tree, cfg: SearchConfig, beams: Beams) -> list[Node]:
    alive = len(beams.alive)
    counts = [cfg.n // alive + (i < cfg.n % alive) for i in range(alive)]
    return expand(problem, lm, tree, cfg, list(beams.alive), counts, beams.iteration)


def select(tree: Tree, cfg: SearchConfig, beams: Beams, candidates: list[Node]) -> Beams:
    done = tuple(c for c in candidates if c.status == TERMINAL)
    going = [c for c in candidates if c.status != TERMINAL]
    if cfg.filter_duplicates:  # search-and-learn's filter_duplicates: the first of equal paths stays
        seen: set[tuple[str, ...]] = set()
        unique = []
        for c in going:
            path = tuple(tree.steps(c))
            if path in seen:
                tree.update(c, status=PRUNED, iteration=beams.iteration, meta=dict(c.meta, duplicate=True))
            else:
                seen.add(path)
                unique.append(c)
        going = unique
    ranked = best_first(going)
    keep = ranked[: cfg.n // cfg.beam_width]
    for loser in ranked[len(keep):]:
        tree.update(loser, status=PRUNED, iteration=beams.iteration)
    return Beams(alive=tuple(sorted(keep, key=lambda c: c.seq)), finished=beams.finished + done,
                 iteration=beams.iteration + 1)

"""Best-of-N: N sampled chains scored by a verifier, picked by `select`:
naive (top path score), weighted (answer with the largest summed score; Li et al. 2023, the
search-and-learn default) or majority (ignores the scores)."""
from __future__ import annotations

from reasoning.config import THINKING_KNOBS, SearchConfig
from reasoning.strategies import NEEDS, SAMPLES, Strategy
from reasoning.strategies.chains import sample_chains, score_leaves, vote
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    leaves = sample_chains(problem, lm, tree, n=cfg.n, temperature=cfg.temperature, cfg=cfg)
    score_leaves(problem, verifier, tree, leaves, cfg.aggregate)
    outcome = vote(leaves, cfg.select)
    if outcome.node is not None:
        tree.select(tree.nodes[outcome.node])
    return outcome


STRATEGY = Strategy("best_of_n", "N samples, pick by verifier (--select naive|weighted|majority)", search,
                    knobs=("n", "temperature", "max_new_tokens", "select", "aggregate", *THINKING_KNOBS), verifier=NEEDS,
                    kind=SAMPLES, order=20)

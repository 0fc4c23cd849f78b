"""Self-consistency (Wang et al. 2022): N sampled chains, majority vote over equivalent answers.
Needs no verifier; when one is given its scores are stored for study but do not change the vote."""
from __future__ import annotations

from reasoning.config import THINKING_KNOBS, SearchConfig
from reasoning.strategies import SAMPLES, Strategy
from reasoning.strategies.chains import sample_chains, score_leaves, vote
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    leaves = sample_chains(problem, lm, tree, n=cfg.n, temperature=cfg.temperature, cfg=cfg)
    score_leaves(problem, verifier, tree, leaves, cfg.aggregate)
    outcome = vote(leaves, "majority")
    if outcome.node is not None:
        tree.select(tree.nodes[outcome.node])
    return outcome


STRATEGY = Strategy("self_consistency", "N samples, majority vote over equivalent answers", search,
                    knobs=("n", "temperature", "max_new_tokens", *THINKING_KNOBS), kind=SAMPLES, order=10)

"""Adaptive-Consistency (Aggarwal et al. 2023): self-consistency that stops sampling once the
majority answer is settled, so easy problems cost a few samples and hard ones up to the cap.

Parameters: cfg.batch samples per call (default 2), cfg.n the cap, cfg.stop_threshold (default 0.95),
cfg.temperature, cfg.max_new_tokens.

Stopping rule (the paper's Beta criterion), checked after every batch: with v1 >= v2 the votes of the
two leading answers (v2 = 0 when there is one answer; samples without an answer do not vote), the
leader's share among the two has the posterior Beta(v1 + 1, v2 + 1) under a uniform prior, and

    P(leader is the true majority) = P(p > 1/2 | v1, v2) = P(Binomial(v1 + v2 + 1, 1/2) <= v1),

an exact identity for integer parameters (the regularized incomplete beta at 1/2), computed with
integers. Sampling stops ("confident") once it exceeds cfg.stop_threshold, else at the cap ("cap").
Unanimous votes give 1 - 2^-(v1 + 1): 0.875 after 2 samples, 0.969 after 4, so at 0.95 a unanimous
problem stops after 4 samples; a 2-2 split stays at 0.5 and runs on.

Outcome.meta (stored in Result.meta): samples, stop_reason, posterior, and the posterior after each
batch. Every chain is stored like self-consistency's (node.meta sample, batch); a verifier, when
given, only scores them.
"""
from __future__ import annotations

from fractions import Fraction
from math import comb

from reasoning.answers import majority
from reasoning.config import THINKING_KNOBS, Knob, SearchConfig
from reasoning.strategies import Strategy
from reasoning.strategies.chains import add_chain, finish, score_leaves, vote
from reasoning.thinking_budget import budgeted
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Node, Outcome, Problem, Verifier

CONFIDENT, CAP = "confident", "cap"


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    prompt = lm.prompt(problem.question)
    leaves: list[Node] = []
    posteriors: list[float] = []
    reason = CAP
    while len(leaves) < cfg.n:
        batch = len(posteriors)
        [completions] = budgeted(lm, cfg).complete([prompt], n=min(cfg.batch, cfg.n - len(leaves)),
                                    max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
        for completion in completions:
            leaf = add_chain(tree, tree.root, completion, cfg.delimiter, {"sample": len(leaves), "batch": batch})
            finish(problem, tree, leaf, completion.text, completion.finish_reason, cfg)
            leaves.append(leaf)
        posteriors.append(leader_posterior([leaf.answer for leaf in leaves]))
        if posteriors[-1] > cfg.stop_threshold:
            reason = CONFIDENT
            break
    score_leaves(problem, verifier, tree, leaves, cfg.aggregate)
    outcome = vote(leaves, "majority")
    if outcome.node is not None:
        tree.select(tree.nodes[outcome.node])
    outcome.meta = {"samples": len(leaves), "stop_reason": reason, "posterior": posteriors[-1],
                    "posteriors": posteriors, "batches": len(posteriors)}
    return outcome


STRATEGY = Strategy(
    "adaptive_consistency", "self-consistency in batches (--batch) that stops once the majority is settled "
    "(--stop-threshold); --n caps the samples", search,
    knobs=("n", "temperature", "max_new_tokens",
           Knob("batch", 2, "adaptive_consistency: samples per stopping check (--n is the cap).", low=1),
           Knob("stop_threshold", 0.95, "adaptive_consistency: stop once P(leader is the majority) exceeds this.",
                low=0.5, high=1), *THINKING_KNOBS),
    adaptive=True, order=80)


def leader_posterior(answers: list[str | None]) -> float:
    """P(the leading answer is the true majority) from the votes so far (equivalent answers merged)."""
    _, votes = majority(answers)
    top = sorted(votes.values(), reverse=True) + [0.0, 0.0]
    return beta_leader_probability(int(top[0]), int(top[1]))


def beta_leader_probability(v1: int, v2: int) -> float:
    """P(p > 1/2) for p ~ Beta(v1 + 1, v2 + 1) = P(Binomial(v1 + v2 + 1, 1/2) <= v1), exactly."""
    trials = v1 + v2 + 1
    return float(Fraction(sum(comb(trials, j) for j in range(v1 + 1)), 2 ** trials))

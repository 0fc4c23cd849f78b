"""Compute-optimal (Snell et al. 2024): probe the question, predict its difficulty, run the strategy
that a sweep measured best for that difficulty at the mean budget asked for.

The plan (bins, the arm per bin, the probe's verifier) is fitted by `policy build` on a stored sweep
(reasoning/policy.py) and stored with the run (knob `plan`, filled from `--policy ID --budget TOKENS`
by the application), so a run can be resumed or shared without the policy. The tree keeps
everything: the probe's chain (meta `probe`), the predicted bin and the choice (the root's meta),
then the chosen strategy's own tree under the same root. The probe's tokens count in the run's.
"""
from __future__ import annotations

from reasoning.config import Knob, SearchConfig
from reasoning.errors import UserError
from reasoning.policy import Arm, bin_of
from reasoning.strategies import FIXED, NEEDS, Strategy, lookup
from reasoning.strategies.chains import sample_chains, score_leaves
from reasoning.tree import Tree
from reasoning.types import LanguageModel, Outcome, Problem, Verifier


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    plan = cfg.plan
    if not plan or not plan.get("arms"):
        raise UserError("compute_optimal has no plan: run it with --policy ID --budget TOKENS")
    [probe] = sample_chains(problem, lm, tree, n=1, temperature=0.0, cfg=cfg)
    score_leaves(problem, verifier, tree, [probe], plan.get("aggregate", "last"))
    edges = plan["edges"]
    bin_ = bin_of(edges, probe.path_score)
    arm = Arm(**plan["arms"][bin_ - 1])
    choice = {"policy": cfg.policy, "budget": plan.get("budget"), "probe_score": probe.path_score, "bin": bin_,
              "bins": len(edges) + 1, "choice": arm.label, "choice_strategy": arm.strategy, "choice_knobs": arm.knobs}
    tree.update(tree.root, meta={**tree.root.meta, **choice})
    for node in tree.path(probe):
        tree.update(node, meta={**node.meta, "probe": True})
    if arm.is_probe:
        tree.select(probe)
        outcome = Outcome(probe.answer, probe.seq, {probe.answer: 1} if probe.answer is not None else {})
    else:
        outcome = lookup(arm.strategy).search(problem, lm, verifier, cfg.replace(**arm.knobs), tree)
    outcome.meta.update({"policy_bin": bin_, "choice": arm.label,
                         "probe_tokens": sum(node.tokens for node in tree.path(probe))})
    return outcome


def check(cfg: SearchConfig) -> None:
    if not cfg.policy:
        raise UserError("compute_optimal needs --policy ID (make one with `python -m reasoning policy build SWEEP_ID`)")
    if cfg.budget < 1:
        raise UserError("compute_optimal needs --budget TOKENS: the mean tokens per question to spend, the probe's included")


STRATEGY = Strategy(
    "compute_optimal", "probe, predict difficulty, run the strategy a policy chose for it (--policy ID --budget TOKENS)",
    search,
    knobs=(Knob("policy", "", "compute_optimal: the policy (id or prefix) from `policy build SWEEP_ID`."),
           Knob("budget", 0, "compute_optimal: mean tokens per question to spend, the probe's included.", low=0),
           Knob("plan", {}, "compute_optimal: the policy's plan at --budget, stored with the run (set from --policy).",
                cli=False),
           "max_new_tokens"),
    budget=(), verifier=NEEDS, kind=FIXED, order=90, check=check,
)

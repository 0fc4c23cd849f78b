"""Confidence from the model's own next-token distributions: the math behind the `logprob`, `entropy`
and `deepconf` verifiers and the `deepconf_online` strategy, and the per-step signals they read.

Why node data and not text: `Verifier.score` gets step texts only, but these scores come from the
token distributions the model produced while writing the steps. So the chain strategies store the
signals on every step node when it is generated (`step_signals`, called by chains.add_chain), and a
confidence verifier implements `score_nodes(question, paths_of_nodes, gold)`, which
chains.score_leaves prefers over `score` when a verifier has it.

node.meta keys (one value per step node; what the Tree page can colour by):
  tok_lp       mean log-probability of the step's tokens (raw distribution, not temperature-scaled)
  tok_entropy  mean entropy (nats) of the step's tokens over the top-k distribution renormalised
  tok_conf     per-token DeepConf confidence C_i = -mean(top-k logprobs), rounded to 4 decimals
  tok_k        k, the number of top log-probabilities per token the backend returned
Steps with no tokens attributed (possible when one token spans a delimiter) carry no tok_lp /
tok_entropy and an empty tok_conf.

Mappings to [0, 1] (a verifier's contract):
  logprob   exp(mean token logprob): the geometric-mean probability of the step's tokens.
  entropy   1 - H / log(k), H the mean entropy: 1 when every token was certain, 0 when uniform over k.
  deepconf  1 - log(k) / C for a group confidence C: C >= log(k) always (the top k probabilities sum
            to at most 1, so their mean log is at most -log k, by Jensen), with equality for a
            uniform top k, so the score is 0 for "no idea among k" and tends to 1 as C grows.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from reasoning.errors import UserError
from reasoning.types import Completion

CONFIDENCE_VERIFIERS = ("logprob", "entropy", "deepconf")
DEFAULT_WINDOW = 32  # DeepConf groups: 2048 tokens in the paper; our arithmetic chains are ~30-80 tokens
SIGNAL_KEYS = ("tok_lp", "tok_entropy", "tok_conf", "tok_k")


# --- per-token quantities ------------------------------------------------------------------------

def token_confidence(top: Sequence[float]) -> float:
    """DeepConf's token confidence: minus the mean of the top-k log-probabilities."""
    return -sum(top) / len(top)


def token_entropy(top: Sequence[float]) -> float:
    """Entropy (nats) of the top-k distribution renormalised to sum to 1."""
    peak = max(top)
    weights = [math.exp(lp - peak) for lp in top]
    total = sum(weights)
    return -sum(w / total * math.log(w / total) for w in weights if w > 0)


# --- mappings to [0, 1] --------------------------------------------------------------------------

def logprob_score(mean_logprob: float) -> float:
    return min(1.0, math.exp(mean_logprob))


def entropy_score(mean_entropy: float, k: int) -> float:
    return 1.0 if k <= 1 else min(1.0, max(0.0, 1.0 - mean_entropy / math.log(k)))


def confidence_score(confidence: float, k: int) -> float:
    if k <= 1:
        return 1.0
    return 0.0 if confidence <= 0 else min(1.0, max(0.0, 1.0 - math.log(k) / confidence))


# --- DeepConf groups -----------------------------------------------------------------------------

def group_confidences(conf: Sequence[float], window: int) -> list[float]:
    """Means of every run of min(window, len) consecutive token confidences (DeepConf's sliding
    groups), in order; one group when the path is shorter than the window, none when empty."""
    size = min(window, len(conf))
    if size == 0:
        return []
    prefix = [0.0]
    for c in conf:
        prefix.append(prefix[-1] + c)
    return [(prefix[end] - prefix[end - size]) / size for end in range(size, len(conf) + 1)]


def lowest_group_confidence(conf: Sequence[float], window: int) -> float | None:
    groups = group_confidences(conf, window)
    return min(groups) if groups else None


# --- signals stored on step nodes ----------------------------------------------------------------

def step_signals(completion: Completion, start: int, end: int) -> dict:
    """The node.meta signals of the step made of the completion's tokens [start, end); {} when the
    backend gave no top-k log-probabilities."""
    tops = completion.token_top_logprobs
    if tops is None:
        return {}
    k = len(tops[0]) if tops else 0
    lps = (completion.token_logprobs or [t[0] for t in tops])[start:end]
    tops = tops[start:end]
    out: dict = {"tok_conf": [round(token_confidence(t), 4) for t in tops], "tok_k": k}
    if tops:
        out["tok_lp"] = sum(lps) / len(lps)
        out["tok_entropy"] = sum(token_entropy(t) for t in tops) / len(tops)
    return out


def node_signals(meta: dict) -> dict[str, float]:
    """A step node's stored signals mapped to [0, 1] with the verifiers' mappings, for colouring a
    tree: "logprob", "entropy", "confidence" (mean token confidence of the step; the deepconf
    verifier's window-based score is in node.score of a deepconf-scored run). {} without token data."""
    k = meta.get("tok_k", 0)
    out = {}
    if "tok_lp" in meta:
        out["logprob"] = logprob_score(meta["tok_lp"])
    if "tok_entropy" in meta:
        out["entropy"] = entropy_score(meta["tok_entropy"], k)
    if meta.get("tok_conf"):
        out["confidence"] = confidence_score(sum(meta["tok_conf"]) / len(meta["tok_conf"]), k)
    return out


def missing_data_error(backend: str) -> UserError:
    return UserError(f"the {', '.join(CONFIDENCE_VERIFIERS[:-1])} and {CONFIDENCE_VERIFIERS[-1]} verifiers "
                     f"and the deepconf_online strategy need token log-probabilities, which backend "
                     f"{backend} does not return")


def require_token_data(lm) -> None:
    """Refuse a model whose backend declares no top-k log-probabilities (before anything runs)."""
    if not getattr(lm, "top_logprobs", 0):
        raise missing_data_error(getattr(lm, "backend", type(lm).__name__))


# --- the verifiers' shared shape -----------------------------------------------------------------

class NodeVerifier:
    """A verifier that scores stored step nodes from their token signals (`score_nodes`). Free to
    run (no model call), so n_params = 0 and it adds no verifier FLOPs to the budget curves."""

    name = "confidence"
    evaluation_only = False
    n_params = 0

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        raise UserError(f"the {self.name} verifier scores the token data stored on step nodes, and this "
                        f"strategy passes bare step texts: use it with a chain strategy (cot, self_consistency, "
                        f"best_of_n, adaptive_consistency, revise, budget_forcing)")

    def score_nodes(self, question: str, paths: list[list], gold: str | None = None) -> list[list[float]]:
        return [self.score_path([self._signals(node) for node in path]) for path in paths]

    def score_path(self, signals: list[dict]) -> list[float]:
        raise NotImplementedError

    def _signals(self, node) -> dict:
        if "tok_conf" not in node.meta:
            raise UserError(f"the {self.name} verifier found a step without token data: the model's backend "
                            f"returned no token log-probabilities, or the step was made by a strategy that "
                            f"does not store them")
        return node.meta


def step_means(signals: list[dict], key: str, to_score) -> list[float]:
    """Per-step scores from a per-step mean; a step without tokens repeats the step before it
    (1.0 for a first step: no evidence of doubt)."""
    scores, last = [], 1.0
    for s in signals:
        if key in s:
            last = to_score(s[key], s.get("tok_k", 0))
        scores.append(last)
    return scores

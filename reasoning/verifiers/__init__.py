"""Verifiers score each step of a reasoning path in [0, 1]; `load_verifier` turns a spec into one.

Specs: `oracle` (checks the gold answer: evaluation only), `self_eval` (the policy model judges its
own steps), `prm:MODEL[@CONVENTION]` (a process reward model, see verifiers/prm.py), and the model's
own confidence: `logprob`, `entropy`, `deepconf[:W]` (see verifiers/confidence.py; they score stored
step nodes through `score_nodes`). A verifier family is one module with the same `score` signature.
"""
from __future__ import annotations

import math

from reasoning.errors import UserError
from reasoning.types import LanguageModel, Verifier

VERIFIERS = ("oracle", "self_eval", "logprob", "entropy", "deepconf")


def load_verifier(spec: str | None, lm: LanguageModel | None = None, *,
                  trust_remote_code: bool = False) -> Verifier | None:
    """`trust_remote_code` lets a PRM run model code shipped with its checkpoint (--trust-remote-code)."""
    if spec in (None, "", "none"):
        return None
    if spec.startswith("prm:"):
        from reasoning.verifiers.prm import load_prm

        return load_prm(spec[len("prm:"):], trust_remote_code=trust_remote_code)
    if spec in ("logprob", "entropy") or spec.split(":")[0] == "deepconf":
        return _confidence_verifier(spec, lm)
    if spec == "oracle":
        from reasoning.verifiers.oracle import OracleVerifier

        return OracleVerifier()
    if spec == "self_eval":
        from reasoning.verifiers.self_eval import SelfEvalVerifier

        if lm is None:
            raise UserError("the self_eval verifier needs a language model")
        return SelfEvalVerifier(lm)
    raise UserError(f"unknown verifier {spec!r}: choose one of none, {', '.join(VERIFIERS)}, prm:MODEL")


def check_verifier_spec(spec: str | None) -> None:
    """Validate a spec without loading anything (before a run is created)."""
    if spec in (None, "", "none") or spec in VERIFIERS:
        return
    if spec.startswith("deepconf:"):
        from reasoning.verifiers.deepconf import parse_window

        parse_window(spec)
        return
    if spec.startswith("prm:"):
        from reasoning.verifiers.prm_conventions import parse_prm_spec

        parse_prm_spec(spec[len("prm:"):])
        return
    raise UserError(f"unknown verifier {spec!r}: choose one of none, {', '.join(VERIFIERS)}, prm:MODEL")


def _confidence_verifier(spec: str, lm: LanguageModel | None) -> Verifier:
    """logprob / entropy / deepconf[:W], refused up front for a backend without token log-probabilities."""
    from reasoning.verifiers.confidence import require_token_data

    if lm is not None:
        require_token_data(lm)
    if spec == "logprob":
        from reasoning.verifiers.logprob import LogprobVerifier

        return LogprobVerifier()
    if spec == "entropy":
        from reasoning.verifiers.entropy import EntropyVerifier

        return EntropyVerifier()
    from reasoning.verifiers.deepconf import DeepConfVerifier, parse_window

    return DeepConfVerifier(parse_window(spec))


def aggregate(step_scores: list[float], how: str = "last") -> float:
    """One score for a path from its step scores (search-and-learn's last / min / prod, plus mean).
    A NaN step score (a broken verifier) counts as 0, so it can never win a selection."""
    scores = [0.0 if (s is None or math.isnan(s)) else float(s) for s in step_scores]
    if not scores:
        return 0.0
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    if how == "mean":
        return sum(scores) / len(scores)
    raise UserError(f"unknown aggregate {how!r}: choose one of last, min, prod, mean")

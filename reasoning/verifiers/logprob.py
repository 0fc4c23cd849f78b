"""`logprob` verifier: how likely the model found its own step. Step score = exp(mean token
logprob), the geometric-mean probability of the step's tokens (see verifiers/confidence.py)."""
from __future__ import annotations

from reasoning.verifiers.confidence import NodeVerifier, logprob_score, step_means


class LogprobVerifier(NodeVerifier):
    name = "logprob"

    def score_path(self, signals: list[dict]) -> list[float]:
        return step_means(signals, "tok_lp", lambda lp, k: logprob_score(lp))

"""`entropy` verifier: how peaked the model's next-token distributions were while it wrote a step.
Step score = 1 - H / log(k), H the mean entropy over the renormalised top-k distributions (see
verifiers/confidence.py): 1 when every token was certain, 0 when each was uniform over k."""
from __future__ import annotations

from reasoning.verifiers.confidence import NodeVerifier, entropy_score, step_means


class EntropyVerifier(NodeVerifier):
    name = "entropy"

    def score_path(self, signals: list[dict]) -> list[float]:
        return step_means(signals, "tok_entropy", entropy_score)

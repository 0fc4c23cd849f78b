"""`deepconf` verifier (DeepConf, Fu et al. 2025): a path is as trustworthy as its least confident
stretch. Token confidence C_i = -mean(top-k logprobs); a group is a window of min(W, length)
consecutive tokens and its confidence the mean C over it; the path's score is its lowest group
confidence, mapped to [0, 1] as 1 - log(k) / C (see verifiers/confidence.py).

Step score = the DeepConf score of the path up to and including that step (groups may span step
boundaries), so the last step's score is the whole path's: aggregate with `last` (the default) to
rank paths by DeepConf's score. node.meta["tok_conf"] keeps the per-token values for finer views. Spec `deepconf` uses W = 32 (the paper's
2048 exceeds our short chains); `deepconf:W` sets another window.
"""
from __future__ import annotations

from reasoning.errors import UserError
from reasoning.verifiers.confidence import DEFAULT_WINDOW, NodeVerifier, confidence_score, lowest_group_confidence


def parse_window(spec: str) -> int:
    """`deepconf` -> the default window; `deepconf:W` -> W (a positive integer)."""
    _, _, text = spec.partition(":")
    if not text:
        return DEFAULT_WINDOW
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"bad verifier {spec!r}: the window in deepconf:W must be a positive integer")
    return int(text)


class DeepConfVerifier(NodeVerifier):
    def __init__(self, window: int = DEFAULT_WINDOW):
        self.window = window
        self.name = "deepconf" if window == DEFAULT_WINDOW else f"deepconf:{window}"

    def score_path(self, signals: list[dict]) -> list[float]:
        conf: list[float] = []
        scores, last = [], 1.0
        for s in signals:
            conf += s["tok_conf"]
            lowest = lowest_group_confidence(conf, self.window)
            if lowest is not None:
                last = confidence_score(lowest, s.get("tok_k", 0))
            scores.append(last)
        return scores

"""The oracle verifier: scores a path by its final answer against the gold answer.

It sees the gold answer, so anything selected with it is an upper bound, never an achievable
accuracy: runs that use it are marked `evaluation_only` everywhere they are shown.
"""
from __future__ import annotations

from reasoning.answers import extract_answer, is_equiv


class OracleVerifier:
    name = "oracle"
    evaluation_only = True
    n_params = 0

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        """1 for every step of a path whose answer is right, 0 when wrong, 0.5 while it has none
        (a partial path: the oracle cannot know yet)."""
        out = []
        for steps in paths:
            answer = extract_answer("\n\n".join(steps), allow_fallback=False).value
            if answer is None or gold is None:
                value = 0.5
            else:
                value = 1.0 if is_equiv(answer, gold) else 0.0
            out.append([value] * len(steps))
        return out

"""Self-evaluation: the policy model judges each of its own steps.

Score of step i = P("Yes") / (P("Yes") + P("No")) for the next token after a question asking whether
step i is correct given the steps before it (as in self-evaluation guided decoding, Xie et al. 2023).
Weak on a 135M model, but it needs no second model, so it works for any LM a user brings.
"""
from __future__ import annotations

from reasoning.types import LanguageModel

JUDGE_TEMPLATE = (
    "Question: {question}\n"
    "Solution so far:\n{previous}"
    "Next step: {step}\n"
    "Is the next step correct? Answer Yes or No.\n"
    "Answer:"
)


class SelfEvalVerifier:
    evaluation_only = False
    n_params = 0  # the policy model itself: no extra weights

    def __init__(self, lm: LanguageModel):
        self.lm = lm
        self.name = "self_eval"

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        return self.score_many([(question, paths, gold)])[0]

    def score_many(self, items: list[tuple[str, list[list[str]], str | None]]) -> list[list[list[float]]]:
        """`score` of several problems' paths in one `choice_probs` call (many problems in flight)."""
        prompts, shape = [], []
        for question, paths, _ in items:
            for steps in paths:
                for i, step in enumerate(steps):
                    previous = "".join(f"{s}\n" for s in steps[:i]) or "(nothing yet)\n"
                    prompts.append(JUDGE_TEMPLATE.format(question=question, previous=previous, step=step))
                shape.append(len(steps))
        probs = self.lm.choice_probs(prompts, [" Yes", " No"]) if prompts else []
        flat, i = [], 0
        for count in shape:
            flat.append([float(p[0]) for p in probs[i : i + count]])
            i += count
        out, at = [], 0
        for _, paths, _ in items:
            out.append(flat[at:at + len(paths)])
            at += len(paths)
        return out

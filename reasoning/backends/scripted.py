"""A scripted `LanguageModel`: exact, instant completions, so tests can pin tree shapes.

It is a real implementation of the protocol (stop strings, token counts, logprobs, seeds), only the
text comes from a script instead of a network.

Token distributions are deterministic: by default every token was the top choice with log-probability
-0.1 and the other k-1 of the top k share the rest of the mass equally (`default_top`). Pass
`token_dist(word) -> top-k logprobs` to script confidences per word (the word is sampled as the top
choice, so its logprob is the first entry), or `top_logprobs=0` to act as a backend without them.
"""
from __future__ import annotations

import math
import re
from typing import Callable

from reasoning.types import Completion

# script(prompt, sample_index, call_index) -> the text the "model" would generate
Script = Callable[[str, int, int], str]
# token_dist(word) -> the top-k log-probabilities of the distribution the word was drawn from
TokenDist = Callable[[str], list[float]]


def default_top(k: int = 20, top: float = -0.1) -> list[float]:
    """A proper distribution: the chosen token at exp(top), the other k-1 sharing the rest equally."""
    rest = math.log((1 - math.exp(top)) / (k - 1)) if k > 1 else top
    return [top] + [rest] * (k - 1)


class ScriptedLM:
    backend = "scripted"
    dtype = "none"
    device = "cpu"

    def __init__(self, script: Script | list[str], name: str = "scripted", n_params: int = 1000,
                 judge: Callable[[str], float] | None = None, token_dist: TokenDist | None = None,
                 top_logprobs: int = 20):
        if isinstance(script, list):
            texts = script
            script = lambda prompt, i, call: texts[i % len(texts)]  # noqa: E731
        self.script = script
        self.judge = judge or (lambda prompt: 0.5)
        self.name = name
        self.model_id = name
        self.n_params = n_params
        self.calls: list[dict] = []
        self.batches: list[int] = []  # per complete_many call: how many calls it merged
        self.top_logprobs = top_logprobs
        self.token_dist = token_dist or (lambda word: default_top(max(top_logprobs, 1)))

    def prompt(self, question: str, system_prompt: str | None = None) -> str:
        return (f"System: {system_prompt}\n" if system_prompt else "") + f"Question: {question}\nAnswer:\n"

    def count_tokens(self, text: str) -> int:
        """A prompt's tokens as this model counts them: its whitespace-delimited words."""
        return len(text.split())

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        call = len(self.calls)
        self.calls.append(dict(prompts=list(prompts), n=n, max_new_tokens=max_new_tokens,
                               temperature=temperature, stop=stop, seed=seed))
        out = []
        for prompt in prompts:
            row = []
            for i in range(n):
                text = self.script(prompt, 0 if temperature == 0 else i, call)
                row.append(self._finish(text, stop, max_new_tokens))
            out.append(row)
        return out

    def complete_many(self, requests):
        """Several calls at once (many problems in flight): each answered as `complete` would alone;
        `batches` records how many were merged, so tests can count merged calls."""
        self.batches.append(len(requests))
        return [self.complete(**request.as_kwargs()) for request in requests]

    def choice_probs(self, prompts, choices):
        probs = []
        for prompt in prompts:
            p = float(self.judge(prompt))
            probs.append([p, 1.0 - p] + [0.0] * (len(choices) - 2))
        return probs


    def _finish(self, text: str, stop, max_new_tokens) -> Completion:
        completion = _finish(text, stop, max_new_tokens)
        words = [completion.text[start:end] for start, end in
                 zip([0] + (completion.token_ends or [])[:-1], completion.token_ends or [])]
        tops = [list(self.token_dist(word.strip()))[: self.top_logprobs] for word in words]
        if self.top_logprobs > 0:
            completion.token_top_logprobs = tops
        completion.token_logprobs = [top[0] if top else -0.1 for top in tops]
        completion.logprob = sum(completion.token_logprobs)
        return completion


def _finish(text: str, stop, max_new_tokens) -> Completion:
    """Cut at the first stop string (kept, as real backends do) or at the token limit.
    A "token" here is a whitespace-delimited word with the whitespace before it."""
    reason = "eos"
    if stop:
        cuts = [text.find(s) + len(s) for s in stop if s in text]
        if cuts:
            text, reason = text[: min(cuts)], "stop"
    ends = [m.end() for m in re.finditer(r"\s*\S+", text)]
    if ends and ends[-1] < len(text):  # trailing whitespace (a delimiter) ends the last token
        ends[-1] = len(text)
    if len(ends) > max_new_tokens:
        ends = ends[:max_new_tokens]
        text, reason = text[: ends[-1]], "length"
    logprobs = [-0.1] * len(ends)
    return Completion(text=text, n_tokens=len(ends), logprob=sum(logprobs), finish_reason=reason,
                      token_logprobs=logprobs, token_ends=ends)

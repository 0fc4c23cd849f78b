"""DeepConf online (Fu et al. 2025): warm-up traces set a confidence bar; later traces are stopped
as soon as their running confidence falls below it, and the vote is weighted by confidence.

Parameters: cfg.n traces in all (the cap), cfg.warmup of them generated in full first (default 4),
cfg.keep_percent eta (default 90), cfg.conf_window W (default 32 tokens), cfg.chunk_tokens (default
16), cfg.temperature, cfg.max_new_tokens.

- Confidence (verifiers/confidence.py): token confidence C_i = -mean(top-k logprobs); a group is a
  window of W consecutive tokens (min(W, length) for a shorter trace) and a trace's confidence is
  its lowest group mean.
- Threshold s = the (100 - eta)th percentile (numpy, linear interpolation) of the warm-up traces'
  confidences: eta = 90 keeps about the top 90% (the paper's DeepConf-high, conservative); eta = 10
  keeps the top 10% (DeepConf-low, aggressive).
- Online traces (n - warmup of them) are generated together in chunks of cfg.chunk_tokens: each
  chunk is a new `complete` call whose prompt is the question's prompt plus the trace so far. After a
  chunk, a trace whose newest full window of W tokens has mean confidence below s is cut: it stops
  for real, so the tokens counted (by the runner, per call) are the tokens actually generated, at
  most chunk_tokens - 1 past the window that fell. A trace shorter than W is never cut (no full window).
- Vote: traces whose confidence is >= s vote with weight = their confidence (warm-up ones too,
  which keeps their top eta%); if none of those has an answer, every finished trace votes.

Stored: every trace as a chain (node.meta sample, phase "warmup" | "online"); on each leaf
meta conf_lowest (its trace confidence) and kept (voted or not); cut traces' leaves are `pruned` with
meta cut=True, at_tokens (tokens generated) and cut_at (token count where the window fell); finished
traces below s are `pruned` with meta filtered=True. Without a verifier each leaf's path_score is its
confidence mapped to [0, 1] (1 - log k / C). Outcome.meta: samples, warmup, threshold, stop reasons.

Differences from the paper, on purpose: the check runs per chunk, not per token (one batched call
per chunk instead of per token); the paper's consensus-based early stop of the whole sampling is
not implemented (adaptive_consistency does that); continuing from text re-tokenizes the trace so
far, which can differ from the generated tokens at a chunk boundary; a backend end marker
(`lm.internal_stops`, e.g. few-shot's "\nQuestion:") split across chunks is found in the joined text.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from reasoning.answers import vote
from reasoning.config import Knob, SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import Strategy
from reasoning.strategies.chains import add_chain, finish, score_leaves
from reasoning.tree import Tree
from reasoning.types import PRUNED, Completion, LanguageModel, Node, Outcome, Problem, Verifier
from reasoning.verifiers.confidence import (confidence_score, lowest_group_confidence, missing_data_error,
                                            token_confidence)

WARMUP, ONLINE = "warmup", "online"
# Confidences within TOLERANCE count as equal (at the bar is above it). They are means of float32
# logprobs, and the same trace's logits differ by up to ~1e-5 between batch shapes (measured on the
# lab model: 7e-6), so a duplicate of a warm-up trace must not fall below the bar that trace set
# because other problems shared its batch. Confidences spread over whole units (C ~ 5..20).
TOLERANCE = 1e-4


def check_config(cfg: SearchConfig) -> None:
    cfg.validate()
    if cfg.warmup > cfg.n:
        raise UserError(f"--warmup ({cfg.warmup}) cannot exceed --n ({cfg.n}), the number of traces in all")


@dataclass
class Trace:
    """A trace being generated chunk by chunk; `completion()` joins its chunks into one."""

    phase: str
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    cut_at: int | None = None

    @property
    def tokens(self) -> int:
        return len(self.logprobs)

    def extend(self, c: Completion, backend: str, end_markers: list[str] = ()) -> None:
        """Append a chunk. A backend's end marker split across two chunks (the few-shot prompt's
        "\nQuestion:") is invisible to the backend, so it is looked for in the joined text here."""
        if c.token_top_logprobs is None:
            raise missing_data_error(backend)
        offset = len(self.text)
        self.text += c.text
        self.logprobs += c.token_logprobs or [0.0] * c.n_tokens
        self.tops += c.token_top_logprobs
        self.ends += [offset + e for e in (c.token_ends or [len(c.text)] * c.n_tokens)]
        self.finish_reason = c.finish_reason
        hits = [self.text.find(mk, max(0, offset - len(mk))) for mk in end_markers]
        hits = [h for h in hits if h >= 0]
        if hits:
            self.text, self.finish_reason = self.text[:min(hits)].rstrip(), "eos"
            self.ends = [min(e, len(self.text)) for e in self.ends]

    def confidences(self) -> list[float]:
        return [token_confidence(t) for t in self.tops]

    def completion(self) -> Completion:
        return Completion(self.text, self.tokens, sum(self.logprobs), self.finish_reason,
                          token_logprobs=self.logprobs, token_ends=self.ends, token_top_logprobs=self.tops)


def search(problem: Problem, lm: LanguageModel, verifier: Verifier | None, cfg: SearchConfig,
           tree: Tree) -> Outcome:
    check_config(cfg)
    backend = getattr(lm, "backend", type(lm).__name__)
    if not getattr(lm, "top_logprobs", 0):
        raise missing_data_error(backend)
    prompt = lm.prompt(problem.question)
    settings = dict(temperature=cfg.temperature, top_p=cfg.top_p)
    [warm] = lm.complete([prompt], n=cfg.warmup, max_new_tokens=cfg.max_new_tokens, **settings)
    traces = [Trace(WARMUP) for _ in warm]
    for trace, completion in zip(traces, warm):
        trace.extend(completion, backend)
    threshold = warmup_threshold([lowest_group_confidence(t.confidences(), cfg.conf_window) for t in traces],
                                 cfg.keep_percent)
    online = [Trace(ONLINE) for _ in range(cfg.n - cfg.warmup)]
    generate_online(lm, prompt, online, threshold, cfg, settings, backend)
    traces += online
    return store_and_vote(problem, tree, verifier, cfg, traces, threshold)


STRATEGY = Strategy(
    "deepconf_online", "--warmup traces set a confidence bar, later traces stop when below it "
    "(--keep-percent, --conf-window); confidence-weighted vote", search,
    knobs=("n", "temperature", "max_new_tokens",
           Knob("warmup", 4, "deepconf_online: traces generated in full to set the confidence bar.", low=1),
           Knob("keep_percent", 90.0, "deepconf_online: eta; bar = (100 - eta)th percentile of warm-up confidences.",
                low=0, high=100, open_low=True),
           Knob("conf_window", 32, "deepconf_online: tokens per confidence group.", low=1),
           Knob("chunk_tokens", 16, "deepconf_online: tokens generated between early-stop checks.", low=1)),
    adaptive=True, check=check_config, order=90, continues=True)


def warmup_threshold(confidences: list[float | None], keep_percent: float) -> float:
    """The (100 - eta)th percentile of the warm-up confidences; -inf (cut nothing) without any."""
    values = [c for c in confidences if c is not None]
    return float(np.percentile(values, 100 - keep_percent)) if values else float("-inf")


def generate_online(lm: LanguageModel, prompt: str, traces: list[Trace], threshold: float, cfg: SearchConfig,
                    settings: dict, backend: str) -> None:
    """Grow the traces chunk by chunk in one batched call per chunk; cut those that fall below."""
    live = list(traces)
    while live:
        budget = min(cfg.chunk_tokens, cfg.max_new_tokens - live[0].tokens)  # live traces share a length
        if live[0].tokens == 0:  # all start from the same prompt: n samples of it
            [row] = lm.complete([prompt], n=len(live), max_new_tokens=budget, **settings)
            rows = [[c] for c in row]
        else:
            rows = lm.complete([prompt + t.text for t in live], n=1, max_new_tokens=budget, **settings)
        still = []
        for trace, [completion] in zip(live, rows):
            before = trace.tokens
            trace.extend(completion, backend, getattr(lm, "internal_stops", None) or [])
            trace.cut_at = first_low_window(trace.confidences(), before, cfg.conf_window, threshold)
            going = trace.finish_reason == "length" and completion.n_tokens == budget
            if trace.cut_at is None and going and trace.tokens < cfg.max_new_tokens:
                still.append(trace)
        live = still


def first_low_window(conf: list[float], since: int, window: int, threshold: float) -> int | None:
    """Token count at which the first full window ending after token `since` has a mean below the
    threshold (the trace would have stopped there), or None."""
    for end in range(max(since + 1, window), len(conf) + 1):
        if sum(conf[end - window:end]) / window < threshold - TOLERANCE:
            return end
    return None


def store_and_vote(problem: Problem, tree: Tree, verifier: Verifier | None, cfg: SearchConfig,
                   traces: list[Trace], threshold: float) -> Outcome:
    leaves: list[Node] = []
    for sample, trace in enumerate(traces):
        completion = trace.completion()
        leaf = add_chain(tree, tree.root, completion, cfg.delimiter, {"sample": sample, "phase": trace.phase})
        finish(problem, tree, leaf, completion.text, completion.finish_reason, cfg)
        lowest = lowest_group_confidence(trace.confidences(), cfg.conf_window)
        kept = trace.cut_at is None and lowest is not None and lowest >= threshold - TOLERANCE
        meta = dict(leaf.meta, conf_lowest=lowest, kept=kept)
        changes = {}
        if trace.cut_at is not None:
            meta.update(cut=True, at_tokens=trace.tokens, cut_at=trace.cut_at)
            changes["status"] = PRUNED
        elif not kept:
            meta.update(filtered=True)
            changes["status"] = PRUNED
        if verifier is None and lowest is not None:
            changes["path_score"] = confidence_score(lowest, len(trace.tops[0]))
        tree.update(leaf, meta=meta, **changes)
        leaves.append(leaf)
    score_leaves(problem, verifier, tree, leaves, cfg.aggregate)
    voters = [leaf for leaf in leaves if leaf.meta["kept"] and leaf.answer is not None]
    if not voters:
        voters = [leaf for leaf in leaves if not leaf.meta.get("cut")]
    weights = [leaf.meta["conf_lowest"] or 0.0 for leaf in voters]
    result = vote([leaf.answer for leaf in voters], weights=weights,
                  rank=[(w, -leaf.seq) for w, leaf in zip(weights, voters)])
    chosen = None if result.chosen is None else voters[result.chosen]
    if chosen is not None:
        tree.select(chosen)
    reasons = Counter("cut" if t.cut_at is not None else t.finish_reason for t in traces)
    meta = {"samples": len(traces), "warmup": cfg.warmup, "threshold": threshold,
            "stop_reasons": dict(reasons), "cut": reasons.get("cut", 0),
            "kept": sum(leaf.meta["kept"] for leaf in leaves),
            "cut_tokens": sum(t.tokens for t in traces if t.cut_at is not None)}
    return Outcome(result.winner, chosen.seq if chosen else None, result.table, meta)

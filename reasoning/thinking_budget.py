"""Thinking budgets: how long a thinking model may think, one setting each, for every chain strategy.

- a minimum (`think_tokens`, s1's budget forcing, Muennighoff et al. 2025): when the model ends its
  thinking (`</think>`, or an end of sequence while thinking) before T thinking tokens, the end is
  replaced by "Wait" and it goes on thinking;
- a maximum (`max_think_tokens`): thinking is cut at T tokens and closed (`</think>`), then the model
  writes its answer from there;
- no thinking (`think=False`, `--no-think`): the prompt gets an empty think block, as Qwen3's
  `enable_thinking=False` writes it, and the model answers at once.

`ThinkingBudget` wraps a model: each whole-chain `complete` call becomes a few rounds of calls (the
thinking up to the end or the cut, a forced continuation, the answer), and each sample comes back as
one `Completion` whose text holds what we wrote too (the empty block, "Wait", the closing tag) at the
offsets listed in `Completion.inserted`, so the tree marks forced and cut thoughts
(strategies/chains.add_thinking_chain). Its tokens are those the model generated and kept.

A completion that never opens a think block (a model that does not think) is left as it came: the
controls act on thinking only (budget_forcing's own loop covers models that do not think).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reasoning.thinking import THINK_CLOSE, THINK_OPEN
from reasoning.types import DEFAULT_DELIMITER, Completion

WAIT = "Wait"
CLOSE = "\n" + THINK_CLOSE + "\n\n"  # what closes a cut thinking (and ends an empty block)
EMPTY_BLOCK = THINK_OPEN + "\n" + CLOSE  # "<think>\n\n</think>\n\n", as Qwen3 writes it without thinking
# Thinking tokens a thinking model may write when no maximum is set, on top of max_new_tokens (which
# then bounds the answer): real reasoning models think for thousands of tokens. Reached, it cuts too.
DEFAULT_THINKING = 4096
MAX_WAITS = 16  # forced continuations per sample at most (a model that keeps stopping at once)
# What Completion.inserted names: the text we wrote into a completion.
EMPTY, FORCED, CUT = "empty", "wait", "cut"


@dataclass(frozen=True)
class Budget:
    """The thinking controls of a search (from cfg: think_tokens, max_think_tokens, think)."""

    minimum: int = 0
    maximum: int = 0  # 0: DEFAULT_THINKING (or the minimum, when larger)
    think: bool = True

    @property
    def cap(self) -> int:
        """Thinking tokens at most: where thinking is cut and closed."""
        return self.maximum or max(self.minimum, DEFAULT_THINKING)

    @classmethod
    def of(cls, cfg) -> "Budget":
        return cls(int(getattr(cfg, "think_tokens", 0) or 0), int(getattr(cfg, "max_think_tokens", 0) or 0),
                   bool(getattr(cfg, "think", True)))


def budgeted(lm, cfg, minimum: int | None = None):
    """`lm` with cfg's thinking controls applied to its whole-chain calls. Always wrapped, even with
    no control set: thinking gets its allowance on top of max_new_tokens (DEFAULT_THINKING), and a
    model that does not think sees the very call it would have seen. `minimum` overrides
    cfg.think_tokens (budget_forcing's own default)."""
    budget = Budget.of(cfg)
    if minimum is not None:
        budget = Budget(minimum, budget.maximum, budget.think)
    return ThinkingBudget(lm, budget, getattr(cfg, "delimiter", DEFAULT_DELIMITER))


def opened_by(prompt: str) -> bool:
    """The prompt already opened the thinking (R1 distills' chat templates end with `<think>\\n`)."""
    return prompt.rstrip().endswith(THINK_OPEN)


@dataclass
class _Sample:
    prompt: str
    text: str = ""
    n_tokens: int = 0
    logprob: float | None = None
    finish: str = "length"
    think_tokens: int = 0
    thinking: bool | None = None  # None: not known yet (nothing generated)
    closed: bool = False
    waits: int = 0
    done: bool = False
    inserted: list[tuple[int, str]] = field(default_factory=list)
    parts: list[Completion] = field(default_factory=list)
    token_logprobs: list[float] | None = field(default_factory=list)
    token_ends: list[int] | None = field(default_factory=list)
    token_top: list[list[float]] | None = field(default_factory=list)

    def write(self, text: str, kind: str) -> None:
        """Text we add (not generated, no tokens), its offset noted."""
        self.inserted.append((len(self.text), kind))
        self.text += text

    def keep(self, c: Completion, upto: int | None = None) -> None:
        """Append a generated completion (its first `upto` characters: the tokens ending there)."""
        upto = len(c.text) if upto is None else upto
        self.parts.append(c)
        kept = _tokens_upto(c, upto)
        base = len(self.text)
        self.text += c.text[:upto]
        self.n_tokens += kept
        if c.logprob is not None:
            whole = kept == c.n_tokens or c.token_logprobs is None
            part = c.logprob if whole else sum(c.token_logprobs[:kept])
            self.logprob = (self.logprob or 0.0) + part
        for name, values, shift in (("token_logprobs", c.token_logprobs, False), ("token_ends", c.token_ends, True),
                                    ("token_top", c.token_top_logprobs, False)):
            mine = getattr(self, name)
            if mine is None or values is None:
                setattr(self, name, None)
            else:
                mine.extend(v + base if shift else v for v in values[:kept])

    def completion(self) -> Completion:
        if len(self.parts) == 1 and not self.inserted and self.parts[0].text == self.text:
            return self.parts[0]  # one call, kept whole: exactly what the model gave
        return Completion(self.text, self.n_tokens, self.logprob, self.finish, self.token_logprobs or None,
                          self.token_ends or None, self.token_top or None, inserted=list(self.inserted))


class ThinkingBudget:
    """A model whose whole-chain calls (`stop` None) keep to a thinking budget; step calls pass through."""

    def __init__(self, lm, budget: Budget, delimiter: str = DEFAULT_DELIMITER):
        self.lm, self.budget, self.delimiter = lm, budget, delimiter

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        if stop or getattr(self.lm, "api", None) == "chat":  # a step; or a chat endpoint, which cannot continue
            return self.lm.complete(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                    stop=stop, seed=seed, top_p=top_p)
        rows = [[_Sample(p) for _ in range(n)] for p in prompts]
        samples = [s for row in rows for s in row]
        if not self.budget.think:
            for s in samples:
                s.write(CLOSE if opened_by(s.prompt) else EMPTY_BLOCK, EMPTY)
                s.thinking, s.closed = True, True
        first = True
        while live := [s for s in samples if not s.done]:
            groups: dict[tuple, list[_Sample]] = {}
            for s in live:
                groups.setdefault(self._request(s, max_new_tokens), []).append(s)
            for (tokens, stops), group in groups.items():
                if first:  # every sample asks the same: n samples of each prompt in one call, as without a budget
                    outs = self.lm.complete([row[0].prompt + row[0].text for row in rows], n=n, max_new_tokens=tokens,
                                            temperature=temperature, stop=stops and list(stops), seed=seed, top_p=top_p)
                    pairs = zip(samples, (c for row in outs for c in row))
                else:
                    outs = self.lm.complete([s.prompt + s.text for s in group], n=1, max_new_tokens=tokens,
                                            temperature=temperature, stop=stops and list(stops), seed=None, top_p=top_p)
                    pairs = zip(group, (row[0] for row in outs))
                for s, c in pairs:
                    self._advance(s, c, max_new_tokens)
            first = False
        return [[s.completion() for s in row] for row in rows]

    def _request(self, s: _Sample, max_new_tokens: int) -> tuple[int, tuple[str, ...] | None]:
        """(token limit, stop strings) of a sample's next call."""
        left = self._limit(s, max_new_tokens) - s.n_tokens
        if s.closed or s.thinking is False:
            return left, None
        if s.thinking is None:  # the first call: as much as a model that does not think may write
            left = max_new_tokens
        left = min(left, self.budget.cap - s.think_tokens)
        # With a minimum, stop at the end of thinking to decide whether it may end there.
        return left, ((THINK_CLOSE,) if self.budget.minimum else None)

    def _advance(self, s: _Sample, c: Completion, max_new_tokens: int) -> None:
        s.finish = c.finish_reason
        if s.thinking is None:  # the first text says whether the model thinks
            s.thinking = opened_by(s.prompt) or c.text.lstrip().startswith(THINK_OPEN)
        room = lambda: s.n_tokens < self._limit(s, max_new_tokens)  # noqa: E731
        if s.closed or not s.thinking:  # the answer (or a model that does not think): to its end
            s.keep(c)
            s.done = c.finish_reason != "length" or not room()
            return
        end = c.text.find(THINK_CLOSE)
        if end >= 0:  # the model ended its thinking
            if self._too_short(s, c, end) and room():
                before = s.n_tokens
                s.keep(c, end)
                s.think_tokens += s.n_tokens - before
                self._wait(s)
                return
            s.keep(c)
            s.think_tokens += _tokens_upto(c, end + len(THINK_CLOSE))
            s.closed = True
            # "stop": we stopped it at the end of thinking (a minimum is set); the answer comes next
            s.done = c.finish_reason == "eos" or not room()
            return
        s.keep(c)
        s.think_tokens += c.n_tokens
        if c.finish_reason == "length":
            if not room():
                s.done = True  # the whole chain's limit
            elif s.think_tokens >= self.budget.cap:
                s.text = s.text.rstrip()
                s.write(CLOSE, CUT)  # cut: closed by us, the answer next
                s.closed = True
        elif self.budget.minimum and s.think_tokens < self.budget.minimum and s.waits < MAX_WAITS and room():
            self._wait(s)  # it stopped while thinking (an end of sequence): go on
        else:
            s.done = True

    def _limit(self, s: _Sample, max_new_tokens: int) -> int:
        """Tokens a sample may generate in all: a thinking model gets its thinking budget on top of
        max_new_tokens (which then bounds what follows: the answer, thinking past a minimum)."""
        return max_new_tokens + (self.budget.cap if s.thinking and self.budget.think else 0)

    def _too_short(self, s: _Sample, c: Completion, end: int) -> bool:
        if not self.budget.minimum or s.waits >= MAX_WAITS:
            return False
        return s.think_tokens + _tokens_upto(c, end) < self.budget.minimum

    def _wait(self, s: _Sample) -> None:
        s.text = s.text.rstrip() + self.delimiter
        s.write(WAIT, FORCED)
        s.waits += 1
        s.finish = "length"


def _tokens_upto(c: Completion, upto: int) -> int:
    if upto >= len(c.text):
        return c.n_tokens
    if c.token_ends is None:
        return round(c.n_tokens * min(upto, len(c.text)) / max(1, len(c.text)))
    return sum(1 for end in c.token_ends if end <= upto)

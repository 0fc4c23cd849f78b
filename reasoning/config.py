"""Every knob of a search, with its default, in one place (the CLI, the runner and the pages read it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER

SELECT_RULES = ("naive", "weighted", "majority")
AGGREGATES = ("last", "min", "prod", "mean")


@dataclass
class SearchConfig:
    n: int = 4  # samples (chains) or beams: the budget
    temperature: float = 0.8  # sampling temperature; cot is always greedy
    top_p: float = 1.0
    max_new_tokens: int = 256  # per whole chain (a level-5 lab solution is up to ~220 tokens)
    select: str = "weighted"  # best_of_n / tree search: naive | weighted | majority
    aggregate: str = "last"  # per-path score from step scores: last | min | prod | mean
    delimiter: str = DEFAULT_DELIMITER
    # Step-level tree search (beam_search, dvts, mcts): steps are generated one call at a time.
    beam_width: int = 4  # M: children per kept beam; beam_search keeps N/M beams, dvts grows N/M subtrees
    max_steps: int = 8  # depth limit: a step at this depth ends its path
    lookahead: int = 0  # K extra greedy steps rolled out before scoring a candidate (0: none)
    max_step_tokens: int = 48  # token limit of one step
    expansions: int = 16  # mcts budget B: number of leaf expansions
    width: int = 3  # mcts expansion width k: child steps sampled per expansion
    c_puct: float = 1.0  # mcts exploration constant
    # Sequential scaling.
    parallel: int = 1  # revise P: parallel chains of N/P attempts each
    think_tokens: int = 128  # budget_forcing T: minimum generated tokens before the model may stop
    # Adaptive (stop when sure): --n is the cap on samples.
    batch: int = 2  # adaptive_consistency: samples drawn between stopping checks
    stop_threshold: float = 0.95  # adaptive_consistency: stop once P(leader is the majority) exceeds it
    warmup: int = 4  # deepconf_online: traces generated in full to set the confidence threshold
    keep_percent: float = 90.0  # deepconf_online eta: threshold = (100 - eta)th percentile of warm-up confidences
    conf_window: int = 32  # deepconf_online: W, tokens per confidence group
    chunk_tokens: int = 16  # deepconf_online: tokens generated between early-stop checks

    def validate(self) -> "SearchConfig":
        if self.n < 1:
            raise UserError(f"--n must be at least 1 (got {self.n})")
        if self.temperature < 0:
            raise UserError(f"--temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1] (got {self.top_p})")
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.select not in SELECT_RULES:
            raise UserError(f"unknown --select {self.select!r}: choose one of {', '.join(SELECT_RULES)}")
        if self.aggregate not in AGGREGATES:
            raise UserError(f"unknown --aggregate {self.aggregate!r}: choose one of {', '.join(AGGREGATES)}")
        if not self.delimiter:
            raise UserError("the step delimiter cannot be empty")
        for flag, value in (("--beam-width", self.beam_width), ("--max-steps", self.max_steps),
                            ("--max-step-tokens", self.max_step_tokens), ("--expansions", self.expansions),
                            ("--width", self.width), ("--parallel", self.parallel)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1 (got {value})")
        if self.lookahead < 0:
            raise UserError(f"--lookahead must be >= 0 (got {self.lookahead})")
        if self.c_puct < 0:
            raise UserError(f"--c-puct must be >= 0 (got {self.c_puct})")
        if self.think_tokens < 0:
            raise UserError(f"--think-tokens must be >= 0 (got {self.think_tokens})")
        for flag, value in (("--batch", self.batch), ("--warmup", self.warmup),
                            ("--conf-window", self.conf_window), ("--chunk-tokens", self.chunk_tokens)):
            if value < 1:
                raise UserError(f"{flag} must be at least 1 (got {value})")
        if not 0.5 <= self.stop_threshold <= 1:
            raise UserError(f"--stop-threshold must be in [0.5, 1] (got {self.stop_threshold})")
        if not 0 < self.keep_percent <= 100:
            raise UserError(f"--keep-percent must be in (0, 100] (got {self.keep_percent})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SearchConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

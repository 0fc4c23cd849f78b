"""Every knob of a search, declared once: its default, help and allowed values.

The knobs several strategies read are declared here (SHARED); a strategy's own knobs are declared
in its module, next to its `search` (reasoning/strategies). `SearchConfig`, the CLI's options, the
Run page's widgets and the sweeps all read these declarations, so a new knob is one `Knob(...)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from reasoning.answers import EXTRACTORS, STANDARD
from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER

SELECT_RULES = ("naive", "weighted", "majority")
AGGREGATES = ("last", "min", "prod", "mean")
AUTO = "auto"  # the extractor knob's default: the dataset's own (reasoning.problems.dataset_extractor)


@dataclass(frozen=True)
class Knob:
    """One setting of a search. Its type is the type of its default."""

    name: str  # the SearchConfig attribute; the flag is --name-with-dashes
    default: Any
    help: str = ""  # the CLI's --help text
    hint: str = ""  # the Run page's tooltip, when it says more than `help`
    choices: tuple[str, ...] = ()
    low: float | None = None  # allowed range: low <= value (low < value when open_low) <= high
    high: float | None = None
    open_low: bool = False
    short: str = ""  # a one-letter flag besides the long one, e.g. -t
    step: float | None = None  # the Run page's +/- step of a float (default 0.5)
    cli: bool = True  # a flag of `run` (the step delimiter is set in code only)
    check: Callable[[Any], str | None] | None = None  # any other rule: the error message, or None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def type(self) -> type:
        return type(self.default)

    def error(self, value) -> str | None:
        """Why `value` is not allowed, as the CLI says it, or None."""
        if self.choices and value not in self.choices:
            return f"unknown {self.flag} {value!r}: choose one of {', '.join(self.choices)}"
        if self.check is not None:
            return self.check(value)
        if self.low is None:
            return None
        if self.high is not None:
            if value > self.high or value < self.low or (self.open_low and value == self.low):
                interval = f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"
                return f"{self.flag} must be in {interval} (got {value})"
            return None
        if value < self.low or (self.open_low and value == self.low):
            bound = f"> {self.low:g}" if self.open_low else f"at least {self.low:g}" if self.low else ">= 0"
            return f"{self.flag} must be {bound} (got {value})"
        return None


SHARED: tuple[Knob, ...] = (
    Knob("n", 4, "Samples (budget).", hint="Budget: samples (chains) or beams.", low=1),
    Knob("temperature", 0.8, hint="Sampling temperature; 0 is greedy.", low=0, short="-t", step=0.1),
    Knob("top_p", 1.0, hint="Nucleus sampling: keep the smallest token set with this much probability.",
         low=0, high=1, open_low=True, step=0.1),
    # A level-5 lab solution is up to ~220 tokens.
    Knob("max_new_tokens", 256, "Tokens per whole chain (chain strategies, each revise attempt, budget_forcing in "
         "all, the mcts fallback completion); beam_search / dvts / mcts steps use --max-step-tokens. A thinking "
         "model's thinking comes on top (chain strategies): up to 4096 tokens, or --max-think-tokens.",
         hint="Token limit of one whole chain.", low=1),
    Knob("select", "weighted", "best_of_n, tree search, revise: naive | weighted | majority",
         hint="How the answer is picked: top-scored chain (naive), largest summed score per answer (weighted), "
              "or votes only (majority).", choices=SELECT_RULES),
    Knob("aggregate", "last", "Path score: last | min | prod | mean",
         hint="One score per path from its step scores: last step, min, product or mean.", choices=AGGREGATES),
    Knob("delimiter", DEFAULT_DELIMITER, "The text that ends a step.", cli=False,
         check=lambda value: None if value else "the step delimiter cannot be empty"),
    # Step-level tree search (beam_search, dvts, mcts): steps are generated one call at a time.
    Knob("beam_width", 4, "beam_search / dvts: M children per beam; N/M beams or subtrees.",
         hint="M: children per kept beam (beam search keeps N/M beams; DVTS grows N/M subtrees).", low=1),
    Knob("max_steps", 8, "Tree search: steps per path at most.",
         hint="Depth limit: a step at this depth ends its path.", low=1),
    Knob("lookahead", 0, "beam_search / dvts: greedy steps rolled out before scoring (default 0: none).",
         hint="Extra greedy steps rolled out before scoring a candidate (0: none).", low=0),
    Knob("max_step_tokens", 48, "Tree search: tokens per step at most.", hint="Token limit of one step.", low=1),
    # search-and-learn's beam semantics (--preset search-and-learn turns them on).
    Knob("last_step_to_eos", False, "Tree search: the step at --max-steps is generated to the end of the text (up to "
         "--max-new-tokens, no step delimiter), as search-and-learn's last iteration.",
         hint="The last allowed step writes the rest of the solution instead of one step."),
    Knob("filter_duplicates", False, "beam_search: a candidate whose path repeats an earlier candidate's text word "
         "for word is pruned before selection (search-and-learn's filter_duplicates).",
         hint="Prune candidates whose whole path repeats another's before keeping the top N/M."),
    # Thinking budgets (reasoning/thinking_budget.py): chain strategies on a thinking model (<think>...</think>).
    Knob("think_tokens", 0, "Thinking models: at least T thinking tokens; an earlier end of thinking is replaced by "
         "'Wait' (s1 budget forcing). 0: none (budget_forcing: 128).",
         hint="Minimum thinking tokens: the end of thinking becomes 'Wait' until then (0: none).", low=0),
    Knob("max_think_tokens", 0, "Thinking models: thinking is cut at T tokens and closed, then the model answers. "
         "0: at 4096 (or --think-tokens, when larger).", hint="Maximum thinking tokens: thinking is closed at T and the answer follows (0: none).",
         low=0),
    Knob("think", True, "Thinking models: --no-think gives an empty think block (answer at once).",
         hint="Let a thinking model think (off: an empty think block, as Qwen3's enable_thinking=False)."),
    # How the question is put and the answer read (every strategy; not on the Run page's per-strategy form).
    Knob("system_prompt", "", "A system prompt: the question is rendered with the model's chat template and this "
         "system message (default: the model's own prompting: its chat template with ThinkTrace's step prompt, or "
         "worked examples for smollm2).", hint="System message of the chat template (empty: the model's default)."),
    Knob("extractor", AUTO, f"How answers are read and graded: {AUTO} (the dataset's own: math500 -> math, gsm8k -> "
         f"gsm8k, others standard) | " + " | ".join(EXTRACTORS) + "; stored with the run.",
         hint="Answer extractor: which markers (\\boxed{}, 'the answer is', ####) are trusted, in which order.",
         choices=(AUTO, *EXTRACTORS)),
)
THINKING_KNOBS = ("think_tokens", "max_think_tokens", "think")  # the chain strategies list them
_SHARED = {knob.name: knob for knob in SHARED}


def knobs() -> dict[str, Knob]:
    """Every knob by name: the shared ones, then each registered strategy's own, in menu order."""
    from reasoning.strategies import registered  # the strategy modules import this one

    table = dict(_SHARED)
    for strategy in registered():
        for knob in strategy.own_knobs:
            table.setdefault(knob.name, knob)
    return table


class _KnobDefaults(type):
    def __getattr__(cls, name: str):
        """`SearchConfig.temperature`: a knob's default."""
        knob = _SHARED.get(name) or (None if name.startswith("_") else knobs().get(name))
        if knob is None:
            raise AttributeError(f"SearchConfig has no knob {name!r}")
        return knob.default


class SearchConfig(metaclass=_KnobDefaults):
    """The value of every knob for one search (strategies read `cfg.beam_width`); a knob not given
    keeps its default. Stored with a run as `to_dict()`, one key per knob."""

    __hash__ = None

    def __init__(self, **values):
        table = knobs()
        unknown = [name for name in values if name not in table]
        if unknown:
            raise TypeError(f"SearchConfig has no knob {', '.join(map(repr, unknown))}")
        for name, knob in table.items():
            setattr(self, name, values.get(name, knob.default))

    def __getattr__(self, name: str):
        """A knob registered after this config was made has its default here."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(SearchConfig, name)

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SearchConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def validate(self) -> "SearchConfig":
        """Every knob within its declared range (the first one out says so, as a UserError)."""
        for name, knob in knobs().items():
            problem = knob.error(getattr(self, name))
            if problem:
                raise UserError(problem)
        return self

    def replace(self, **changes) -> "SearchConfig":
        return SearchConfig(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in knobs()}

    @classmethod
    def from_dict(cls, data: dict, strategy: str | None = None) -> "SearchConfig":
        """A stored config. Stored before thinking budgets (no max_think_tokens), think_tokens was
        budget_forcing's knob alone (default 128, stored with every run): other strategies drop it;
        stored before extractors had names, its answers were read by the standard one."""
        known = knobs()
        values = {k: v for k, v in data.items() if k in known}
        if "max_think_tokens" not in data and strategy != "budget_forcing":
            values.pop("think_tokens", None)
        if "extractor" not in data:  # stored before extractors had names: graded by the standard one
            values["extractor"] = STANDARD
        return cls(**values)

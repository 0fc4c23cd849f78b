"""The seams of ThinkTrace: what a model, a verifier and a strategy promise each other.

A strategy sees only these types, so the same search runs on transformers, vLLM or a server, and
every step it takes is a `Node` that the runner streams to the store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

DEFAULT_DELIMITER = "\n\n"

# Node statuses. "kept" is a live node of the search; "pruned" lost a selection; "terminal" ended a
# path (answer, EOS or length); "selected" lies on the path the strategy finally chose.
KEPT, PRUNED, TERMINAL, SELECTED = "kept", "pruned", "terminal", "selected"
STATUSES = (KEPT, PRUNED, TERMINAL, SELECTED)


@dataclass
class Completion:
    text: str
    n_tokens: int  # generated tokens
    logprob: float | None  # sum of token logprobs under the model (not temperature-scaled)
    finish_reason: str  # "stop" (hit a stop string) | "eos" | "length"
    # Per generated token: its log-probability and the character offset in `text` where it ends.
    # Lets chain strategies attribute tokens and logprobs to the steps they split a text into.
    token_logprobs: list[float] | None = None
    token_ends: list[int] | None = None
    # Per generated token: the k largest log-probabilities of the raw next-token distribution (k = 20 by
    # default, descending; not temperature-scaled). Feeds the confidence verifiers (logprob, entropy,
    # deepconf) and deepconf_online; None when the backend cannot return them.
    token_top_logprobs: list[list[float]] | None = None
    # Text in `text` that the model did not generate (reasoning/thinking_budget.py): (offset, kind), kind
    # "empty" (an empty think block), "wait" (a forced "Wait") or "cut" (thinking closed at its budget).
    inserted: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class GenerationRequest:
    """The arguments of one `complete` call. A backend with `complete_many(requests)` runs several
    (of different problems, each with its own settings and seed) in shared batches: reasoning/scheduler.py."""

    prompts: list[str]
    n: int
    max_new_tokens: int
    temperature: float
    stop: list[str] | None = None
    seed: int | None = None
    top_p: float = 1.0

    def as_kwargs(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@runtime_checkable
class LanguageModel(Protocol):
    name: str  # e.g. "SmolLM2-135M-Instruct (embedded)"
    n_params: int  # for FLOPs axes

    def prompt(self, question: str) -> str:
        """The text the model continues for a question: chat template, system prompt, few-shot."""
        ...

    def complete(
        self,
        prompts: list[str],
        n: int,
        max_new_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        seed: int | None = None,
        top_p: float = 1.0,
    ) -> list[list[Completion]]:
        """n completions per prompt, in one batch. temperature 0 means greedy. A backend may also
        offer `complete_many(requests: list[GenerationRequest]) -> list[list[list[Completion]]]`,
        the answers of several calls run together; each must equal what `complete` gives alone."""
        ...

    def choice_probs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        """For each prompt, the probability of each choice as the next token, renormalised over
        the choices. Used by the self-evaluation verifier."""
        ...


@runtime_checkable
class Verifier(Protocol):
    name: str
    evaluation_only: bool  # True when it peeks at the gold answer (oracle)

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        """Per-step scores in [0, 1] for each path (a list of step texts)."""
        ...


@dataclass
class Problem:
    key: str
    question: str
    answer: str | None  # gold; None when unknown
    dataset: str = "custom"
    difficulty: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Node:
    """One step of reasoning (or the root, which holds the question). `seq` is creation order
    within a problem and doubles as the node's id there; `parent` is the parent's seq."""

    seq: int
    parent: int | None
    depth: int
    text: str
    tokens: int = 0
    logprob: float | None = None
    score: float | None = None  # verifier score of this step
    path_score: float | None = None  # aggregated score of the path ending here
    status: str = KEPT
    finish_reason: str | None = None
    answer: str | None = None  # extracted final answer, when this node ends a path
    correct: bool | None = None
    iteration: int | None = None  # search iteration that created (or pruned) it
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    answer: str | None
    node: int | None  # seq of the chosen terminal node
    votes: dict[str, float] = field(default_factory=dict)  # answer -> votes or summed score
    meta: dict[str, Any] = field(default_factory=dict)


Emit = Callable[[Node], None]

"""The strategies: one module each, one signature `search(problem, lm, verifier, cfg, tree) -> Outcome`,
and one declaration per module (`STRATEGY = Strategy(...)`, beside its `search`) that says what the
rest of ThinkTrace needs to know about it: its knobs, its budget, its verifier, how sweeps and curves
treat its runs. Every module of this package with a STRATEGY is found on first use; a strategy
defined elsewhere joins with `register(...)`.

Adding a strategy is one module here (its `search` and its STRATEGY) plus its test: the CLI's
flags, the Run page's form, sweeps, curves and run names all read the declaration.
"""
from __future__ import annotations

import pkgutil
import threading
from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from reasoning.config import SHARED, Knob, SearchConfig
from reasoning.errors import UserError

# What a strategy does with a verifier.
NEEDS, ACCEPTS, IGNORES = "needs", "accepts", "ignores"
# How sweeps and curves treat its runs:
SAMPLES = "samples"  # N independent chains: one shared run serves every budget, curves subsample it
SEARCHES = "searches"  # one run per budget, one point per run
FIXED = "fixed"  # no budget: one run whatever the budgets, one point at k = 1


@dataclass(frozen=True)
class Strategy:
    """What a strategy is, declared once beside its `search`."""

    name: str
    help: str  # one line: the Run page's menu and `--strategy`
    search: Callable  # (problem, lm, verifier, cfg, tree) -> Outcome
    # The knobs a user sets for it, in the order the Run page shows them: a shared knob by name
    # (reasoning.config.SHARED), a knob of its own declared right here as a Knob. (What any strategy
    # may also read, top_p and the delimiter, is not listed; nor is select where the form never showed it.)
    knobs: tuple[str | Knob, ...] = ()
    # The knobs its budget sets: a sweep sets each to the budget, and `n` names the run ("n=8").
    # A sweep also keys a per-budget run by n, so it sets n even where n is not listed.
    budget: tuple[str, ...] = ("n",)
    verifier: str = ACCEPTS  # NEEDS | ACCEPTS (scores stored for study) | IGNORES
    kind: str = SEARCHES  # SAMPLES | SEARCHES | FIXED
    adaptive: bool = False  # spends what it chooses: Result.meta["samples"] records it; n is the cap
    check: Callable[[SearchConfig], None] | None = None  # settings beyond each knob's range (N % M == 0, ...)
    order: int = 100  # place in menus and listings: the baseline first, then by how compute is spent
    # Continues a partial answer (a beam's steps, a forced "Wait", a chunk): needs a raw-text endpoint,
    # so a chat endpoint (--api chat) is refused for it.
    continues: bool = False
    # Trains the model at test time (ttt): needs the transformers backend (weights it can train and
    # restore) and tasks with demonstrations (reasoning/fewshot.py).
    trains: bool = False

    @property
    def own_knobs(self) -> tuple[Knob, ...]:
        return tuple(k for k in self.knobs if isinstance(k, Knob))

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name if isinstance(k, Knob) else k for k in self.knobs)


_registry: dict[str, Strategy] = {}
_discovered = False
_lock = threading.RLock()  # the app looks strategies up from several threads at once


def register(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Add a strategy (or, with replace=True, swap one of the same name). Its own knobs become
    SearchConfig knobs and `run` flags; a name or knob that is already taken is refused."""
    _discover()
    with _lock:
        if strategy.name in _registry and not replace:
            raise ValueError(f"a strategy named {strategy.name!r} is already registered")
        _add(strategy)
    return strategy


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def _add(strategy: Strategy) -> None:
    if strategy.verifier not in (NEEDS, ACCEPTS, IGNORES) or strategy.kind not in (SAMPLES, SEARCHES, FIXED):
        raise ValueError(f"strategy {strategy.name}: verifier must be one of needs, accepts, ignores and kind "
                         f"one of samples, searches, fixed")
    others = {knob.name: knob for knob in SHARED}
    for other in _registry.values():
        if other.name != strategy.name:
            others.update((knob.name, knob) for knob in other.own_knobs)
    for knob in strategy.own_knobs:
        if others.get(knob.name, knob) != knob or knob.name.startswith("_") or knob.name in vars(SearchConfig):
            raise ValueError(f"strategy {strategy.name}: knob {knob.name!r} is already declared")
    missing = [name for name in strategy.knob_names + strategy.budget
               if name not in others and name not in {knob.name for knob in strategy.own_knobs}]
    if missing:
        raise ValueError(f"strategy {strategy.name}: unknown knobs {', '.join(missing)}")
    _registry[strategy.name] = strategy


def _discover() -> None:
    """Register the STRATEGY of every module in this package, once."""
    global _discovered
    with _lock:
        if _discovered:
            return
        _discovered = True  # first: a module that looks strategies up as it is imported sees those so far
        for info in pkgutil.iter_modules(__path__):
            declared = getattr(import_module(f"{__name__}.{info.name}"), "STRATEGY", None)
            if isinstance(declared, Strategy) and declared.name not in _registry:
                _add(declared)


def registered() -> list[Strategy]:
    """Every strategy, in menu order."""
    _discover()
    with _lock:
        found = list(_registry.values())
    return sorted(found, key=lambda s: (s.order, s.name))


def names(kind: str | None = None, adaptive: bool | None = None) -> list[str]:
    """Strategy names in menu order, optionally only those of one kind or (non-)adaptive ones."""
    return [s.name for s in registered() if kind in (None, s.kind) and adaptive in (None, s.adaptive)]


def lookup(name: str) -> Strategy:
    _discover()
    if name not in _registry:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(names())}")
    return _registry[name]


def check_strategy(name: str, verifier: str | None) -> None:
    if lookup(name).verifier == NEEDS and verifier in (None, "", "none"):
        raise UserError(f"strategy {name} needs a verifier: pass --verifier (e.g. self_eval or oracle)")


def check_endpoint(name: str, backend_options: dict, cfg: SearchConfig | None = None,
                   backend: str = "transformers") -> None:
    """A strategy that continues a partial answer cannot run on a chat endpoint (--api chat); nor can a
    thinking budget, which continues (or pre-fills) the model's thinking; a strategy that trains
    needs weights it can train (the transformers backend)."""
    if lookup(name).trains and backend != "transformers":
        raise UserError(f"strategy {name} trains the model at test time, which the {backend} backend cannot: "
                        "run it with --backend transformers (the default)")
    if backend_options.get("api") != "chat":
        return
    if lookup(name).continues:
        raise UserError(f"strategy {name} continues a partial answer, which a chat endpoint cannot: "
                        f"run it with --api completions (the default)")
    if cfg is not None:
        given = [flag for flag, on in (("--think-tokens", cfg.think_tokens), ("--max-think-tokens", cfg.max_think_tokens),
                                       ("--no-think", not cfg.think)) if on]
        if given:
            raise UserError(f"{' and '.join(given)} continue or pre-fill the model's thinking, which a chat endpoint "
                            f"cannot: run with --api completions (the default)")


def check_problems(name: str, problems) -> None:
    """A strategy that trains on demonstrations needs problems that have them (before a run starts)."""
    if lookup(name).trains:
        from reasoning.fewshot import is_task

        if bad := next((p for p in problems if not is_task(p)), None):
            raise UserError(f"strategy {name} learns from a task's demonstrations, and problem {bad.key[:40]!r} of "
                            f"{bad.dataset[:40]} has none: use --dataset arclab:test, arc:PATH or a few-shot JSONL")


def check_config(name: str, cfg: SearchConfig) -> None:
    """Every knob in range, then the settings the strategy needs beyond that (e.g. N a multiple of
    the beam width): checked before a run is created so a bad combination never starts one."""
    strategy = lookup(name)
    cfg.validate()
    if strategy.check is not None:
        strategy.check(cfg)


def default_verifier(strategy: str, model: str, verifier: str | None) -> str | None:
    """`verifier` as given, or the model's own verifier (backends.DEFAULT_VERIFIERS) when the strategy
    needs one and none was given: `--model lab --strategy best_of_n` means best-of-N with the lab PRM."""
    from reasoning.backends import DEFAULT_VERIFIERS

    _discover()
    if verifier in (None, "") and strategy in _registry and _registry[strategy].verifier == NEEDS:
        return DEFAULT_VERIFIERS.get(model, verifier)
    return verifier


def get_strategy(name: str):
    """The `search` function of a strategy."""
    return lookup(name).search

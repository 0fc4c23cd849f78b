"""One module per strategy, one signature: `search(problem, lm, verifier, cfg, tree) -> Outcome`.
The dispatch table below is the only place that knows them all."""
from __future__ import annotations

from importlib import import_module

from reasoning.errors import UserError

# name -> (module, needs a verifier, one-line help)
STRATEGIES: dict[str, tuple[str, bool, str]] = {
    "cot": ("reasoning.strategies.cot", False, "one greedy chain of thought"),
    "self_consistency": ("reasoning.strategies.self_consistency", False,
                         "N samples, majority vote over equivalent answers"),
    "best_of_n": ("reasoning.strategies.best_of_n", True,
                  "N samples, pick by verifier (--select naive|weighted|majority)"),
}


def check_strategy(name: str, verifier: str | None) -> None:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    if STRATEGIES[name][1] and verifier in (None, "", "none"):
        raise UserError(f"strategy {name} needs a verifier: pass --verifier (e.g. self_eval or oracle)")


def get_strategy(name: str):
    """The `search` function of a strategy."""
    check_strategy(name, "any")
    return import_module(STRATEGIES[name][0]).search

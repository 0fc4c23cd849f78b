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
    "beam_search": ("reasoning.strategies.beam_search", True,
                    "step-level beam search: keep the top N/M of N scored steps (--beam-width M)"),
    "dvts": ("reasoning.strategies.dvts", True, "N/M independent greedy subtrees of width M (diversity)"),
    "mcts": ("reasoning.strategies.mcts", True,
             "UCT over steps, verifier as value (--expansions, --width, --c-puct)"),
    "revise": ("reasoning.strategies.revise", False,
               "P chains of N/P attempts, each revising the earlier ones (--parallel P)"),
    "budget_forcing": ("reasoning.strategies.budget_forcing", False,
                       "one greedy chain, made to go on ('Wait') until --think-tokens"),
    "adaptive_consistency": ("reasoning.strategies.adaptive_consistency", False,
                             "self-consistency in batches (--batch) that stops once the majority is settled "
                             "(--stop-threshold); --n caps the samples"),
    "deepconf_online": ("reasoning.strategies.deepconf_online", False,
                        "--warmup traces set a confidence bar, later traces stop when below it "
                        "(--keep-percent, --conf-window); confidence-weighted vote"),
}
# Strategies whose Result.meta records the samples they chose to spend (thinktrace/adaptive_curves.py).
ADAPTIVE = ("adaptive_consistency", "deepconf_online")


def check_strategy(name: str, verifier: str | None) -> None:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    if STRATEGIES[name][1] and verifier in (None, "", "none"):
        raise UserError(f"strategy {name} needs a verifier: pass --verifier (e.g. self_eval or oracle)")


def check_config(name: str, cfg) -> None:
    """The settings a strategy needs beyond SearchConfig.validate (e.g. N a multiple of the beam
    width), checked before a run is created so a bad combination never starts one."""
    check_strategy(name, "any")
    cfg.validate()
    check = getattr(import_module(STRATEGIES[name][0]), "check_config", None)
    if check is not None:
        check(cfg)


def get_strategy(name: str):
    """The `search` function of a strategy."""
    check_strategy(name, "any")
    return import_module(STRATEGIES[name][0]).search

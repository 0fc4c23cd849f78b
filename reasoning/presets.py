"""Presets: another project's settings as one name (`--preset NAME` on `run` and `sweep`, the Run page's
"Preset" menu), so that numbers compare without matching knobs by hand.

A preset is only knob values (reasoning.config): it sets the knobs it names, a flag given on the
command line (or a value changed on the Run page) overrides it, and every other knob keeps its
default. A run made with one stores its name (`params["preset"]`) beside the knob values it used, so
the run says how it was made. What a preset cannot match is listed in its `differences` document.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasoning.errors import UserError


@dataclass(frozen=True)
class Preset:
    name: str
    help: str  # one line: the Run page's menu and `--preset`
    source: str  # where the values were read (repository, files, commit)
    knobs: dict[str, Any]  # knob name -> value
    differences: str = ""  # the doc listing what still differs


# huggingface/search-and-learn, src/sal/config.py (Config defaults) and
# recipes/Llama-3.2-1B-Instruct/*.yaml at commit 6f81cac (May 2025); the published runs' revisions
# say the same: T-0.8, top_p-1.0, m-4, iters-40, look-0, agg_strategy-last.
SEARCH_AND_LEARN_SYSTEM_PROMPT = (
    "Solve the following math problem efficiently and clearly:\n\n"
    "- For simple problems (2 steps or fewer):\nProvide a concise solution with minimal explanation.\n\n"
    "- For complex problems (3 steps or more):\nUse this step-by-step format:\n\n"
    "## Step 1: [Concise description]\n[Brief explanation and calculations]\n\n"
    "## Step 2: [Concise description]\n[Brief explanation and calculations]\n\n"
    "...\n\n"
    "Regardless of the approach, always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        name="search-and-learn",
        help="huggingface/search-and-learn's MATH settings: their system prompt in the chat template, "
             "\\boxed{} grading, 2048 tokens, beam search to EOS within 40 iterations, T=0.8, PRM score = last step",
        source="huggingface/search-and-learn src/sal/config.py and recipes/Llama-3.2-1B-Instruct/*.yaml (commit 6f81cac)",
        knobs={
            "system_prompt": SEARCH_AND_LEARN_SYSTEM_PROMPT,  # rendered with the model's chat template
            "extractor": "math",  # \boxed{} first, as their Qwen2.5-Math parser reads answers
            "temperature": 0.8,
            "top_p": 1.0,
            "max_new_tokens": 2048,  # max_tokens: a whole chain...
            "max_step_tokens": 2048,  # ...and each step of beam search / DVTS (they share one limit)
            "max_steps": 40,  # num_iterations
            "last_step_to_eos": True,  # their last iteration generates to EOS
            "filter_duplicates": True,  # recipes/Llama-3.2-1B-Instruct/beam_search.yaml
            "aggregate": "last",  # agg_strategy
            "n": 4,
            "beam_width": 4,
            "lookahead": 0,
            "select": "weighted",  # their weighted best-of-N (pred_weighted@n); naive is their `pred`
        },
        differences="docs/search-and-learn.md",
    ),
)}


def lookup_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_values(name: str | None, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The knob values of a run made with preset `name` (None: no preset) and the knobs `given`
    explicitly: the preset's, then the given ones on top."""
    values = dict(lookup_preset(name).knobs) if name else {}
    return {**values, **(given or {})}

"""Flags several commands share, defined once so their names and help never drift: the database
(`--db`, every command that reads or writes runs), `--json`, the backend flags of `run` and `sweep`,
and the knobs' flags, made from their declarations (reasoning.config.Knob); the parsers every number
flag uses, and the one way JSON is printed."""
from __future__ import annotations

import inspect
import json
import math

import typer

from reasoning.errors import UserError

# The store keeps integers in 64-bit columns (a run's seed, a problem's level).
INT64 = 2**63


def whole(text) -> int:
    """The parser of every integer flag: a whole number the store can hold. Without it, --seed
    99999999999999999999 passes and fails after the model has loaded, when the run is stored."""
    shown = str(text) if len(str(text)) <= 24 else str(text)[:24] + "..."
    if len(str(text).strip().lstrip("+-")) > len(str(INT64)):  # thousands of digits: no int() of them
        raise ValueError(f"{shown} is out of range (a 64-bit integer)")
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {shown}") from None
    if not -INT64 <= value < INT64:
        raise ValueError(f"{shown} is out of range (a 64-bit integer)")
    return value


def finite(text) -> float:
    """The parser of every float flag: nan, inf and 1e400 are not numbers a setting can take (P3);
    NaN passes every range check (nan < 0 is false) and only fails deep inside sampling."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number (got {text})")
    return value


NUMBER_PARSERS = {int: whole, float: finite}


def positive_list(text: str, flag: str, example: str, high: float = 1e12) -> list[float]:
    """A comma list of positive numbers (`policy --budgets`, `scale-what --ratios`), or one line saying why not."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag} must be numbers separated by commas, e.g. {example} (got {text!r})") from None
    if not values or any(not (0 < v < high) for v in values):  # also NaN and inf
        raise UserError(f"{flag} must be positive numbers, e.g. {example} (got {text!r})")
    return values


def parse_seeds(text: str | None) -> list[int] | None:
    """`--seeds 0,1,2`: distinct whole numbers, or one line saying why not (None: not given)."""
    if text is None:
        return None
    try:
        seeds = [whole(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds must be whole numbers separated by commas, e.g. 0,1,2,3,4 (got {text!r})") from None
    if not seeds:
        raise UserError("--seeds is empty: e.g. --seeds 0,1,2,3,4")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds names a seed twice: {text}")
    return seeds


def print_json(data) -> None:
    """Print `data` as strict JSON (allow_nan=False): NaN and Infinity are not JSON, and tools that
    read `--json` (jq, JSON.parse) reject them. Non-finite floats can only come from a database row
    written before inputs were checked (or by hand); they print as null, "no value", rather than
    refusing the whole listing, so such a run can still be found, shown and deleted."""
    typer.echo(json.dumps(_finite_or_none(data), indent=2, allow_nan=False))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


DbOption = typer.Option(None, "--db", help="SQLite file or database URL (default: $THINKTRACE_DB or ./thinktrace.db)")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
BackendOption = typer.Option("transformers", "--backend", help="transformers | vllm (pip install vllm==0.32.0) | openai (an OpenAI-compatible server at --base-url; key from $THINKTRACE_API_KEY or $OPENAI_API_KEY).")
BaseUrlOption = typer.Option(None, "--base-url", help="openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1. resume / sweep --resume: the server to finish on (required for runs from a bundle, which carry no server address).")
DtypeOption = typer.Option(None, "--dtype", help="transformers / vllm: float32 | bfloat16 | float16 (default: bf16 on GPUs, fp32 on CPUs).")
GpuMemoryOption = typer.Option(None, "--gpu-memory-utilization", parser=finite, help="vllm: share of GPU memory for weights + KV cache (default 0.9; lower it to fit a PRM beside the policy).")
TensorParallelOption = typer.Option(None, "--tensor-parallel-size", parser=whole, help="vllm: GPUs to split the model across.")
MaxModelLenOption = typer.Option(None, "--max-model-len", parser=whole, help="vllm: context length (smaller leaves more memory for the KV cache).")
ModelParamsOption = typer.Option(None, "--model-params", parser=finite, help="openai: the served model's parameter count, e.g. 7.6e9, for the FLOPs axes of curves (the API does not say it; the lab and smollm2 models count their own).")
ApiOption = typer.Option(None, "--api", help="openai: completions (default: raw text, every strategy) | chat (/v1/chat/completions, for reasoning models behind a reasoning parser: their thinking is kept as thoughts; chain strategies only).")
PresetOption = typer.Option(None, "--preset", help="Another project's settings as one name: search-and-learn "
                             "(their system prompt and chat template, \\boxed{} grading, 2048 tokens, beam search to "
                             "EOS within 40 iterations, T=0.8, PRM aggregation last; docs/search-and-learn.md). Flags "
                             "given here override it; the run stores the preset and every value.")
SeedsOption = typer.Option(None, "--seeds", help="Comma list of sampling seeds, e.g. 0,1,2,3,4: one run per seed, all on "
                           "the problems of --seed, grouped so curves average them (CIs over problems and seeds).")
ConcurrencyOption = typer.Option(None, "--concurrency", parser=whole, help="Problems in flight: their model and verifier calls are merged into shared batches; the results do not depend on it (default: 16 with transformers on a CPU, 64 on a GPU, 256 with vllm, 16 with openai).")


def backend_options(**given) -> dict:
    """The backend settings that were given (stored with a run or sweep; checked by check_backend).
    A parameter count typed as 7.6e9 is stored as the integer it means."""
    if given.get("model_params") is not None and float(given["model_params"]).is_integer():
        given["model_params"] = int(given["model_params"])
    return {name: value for name, value in given.items() if value is not None}


def knob_option(knob, help: str | None = None) -> inspect.Parameter:
    """The typer option of a knob (reasoning.config.Knob): its flag, default and help."""
    flag = f"{knob.flag}/--no-{knob.flag[2:]}" if knob.type is bool else knob.flag  # a switch: --think / --no-think
    decls = [flag] + ([knob.short] if knob.short else [])
    text = knob.help if help is None else help
    return inspect.Parameter(knob.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=knob.type,
                             default=typer.Option(knob.default, *decls, help=text or None,
                                                  parser=NUMBER_PARSERS.get(knob.type)))


class KnobCommand:
    """A command whose knob options are made from the knob declarations each time typer builds the
    CLI (so a strategy registered late still gets its flags). The wrapped function takes its other
    options as usual and the knobs as one mapping, its parameter `knobs`, whose place the knob
    options take (those named in `lead` come right after the first option: `--strategy`, `--n`);
    `options` makes other options at build time too (e.g. --strategy's help lists the strategies)."""

    def __init__(self, func, knobs, help: dict[str, str] | None = None, options: dict | None = None,
                 lead: tuple[str, ...] = ()):
        self.func, self.knobs, self.help, self.options, self.lead = func, knobs, help or {}, options or {}, lead
        self.__name__, self.__doc__ = func.__name__, func.__doc__

    @property
    def __signature__(self) -> inspect.Signature:
        signature = inspect.signature(self.func, eval_str=True)
        made = {knob.name: knob_option(knob, self.help.get(knob.name)) for knob in self.knobs()}
        lead = [made.pop(name) for name in self.lead if name in made]
        params = []
        for param in signature.parameters.values():
            if param.name == "knobs":
                params += made.values()
            else:
                made_here = param.name in self.options
                params.append(param.replace(default=self.options[param.name]()) if made_here else param)
            if len(params) == 1:
                params += lead
        params.append(inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        return signature.replace(parameters=params)

    @property
    def __annotations__(self) -> dict:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **values):
        """The knobs mapping holds the knobs given on the command line only (a preset fills the
        others, then their defaults: reasoning.presets.preset_values)."""
        names = {knob.name for knob in self.knobs()}
        context = values.pop(_CONTEXT, None)
        return self.func(**{k: v for k, v in values.items() if k not in names},
                         knobs={k: v for k, v in values.items() if k in names and _given(context, k)})


_CONTEXT = "knob_command_context"  # the typer.Context a KnobCommand asks for, to tell given options from defaults


def _given(context, name: str) -> bool:
    """Whether option `name` was given (not left at its default); without a context (called as a
    plain function) every value counts as given."""
    source = context.get_parameter_source(name) if context is not None else "given"
    return source is not None and getattr(source, "name", source) != "DEFAULT"

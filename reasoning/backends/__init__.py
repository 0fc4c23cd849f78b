"""Model loading: a name from the registry, a Hugging Face model id, or a local HF folder.

Importing this package stays cheap (no torch): pages import it to list models; the heavy backend is
imported only by `load_model`.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reasoning.errors import UserError
from reasoning.types import LanguageModel

# Weights and tokenizer of a hub repo, without the .bin / .gguf / onnx duplicates many repos carry.
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


@dataclass(frozen=True)
class Entry:
    folder: Callable[[], Path]  # an HF folder, produced on first use when it has to be
    name: str
    prompt_style: str
    thinking: bool = False  # writes <think> ... </think> before its answer: give it tokens to think


def _embedded_folder() -> Path:
    from reasoning.backends import embedded

    return embedded.model_dir()


def _lab_folder() -> Path:
    from reasoning.lab import REASONER_DIR

    return REASONER_DIR


def _ladder_folder(size: str) -> Callable[[], Path]:
    def folder() -> Path:
        from reasoning.lab import MODELS_DIR

        return MODELS_DIR / f"reasoner-{size}"

    return folder


def _arc_folder() -> Path:
    from reasoning.lab import ARC_DIR

    return ARC_DIR


def _thinker_folder() -> Path:
    from reasoning.lab import THINKER_DIR

    return THINKER_DIR


# The default model: the lab reasoner runs every strategy in seconds on a laptop CPU and comes with
# its own PRM (prm:lab); SmolLM2 stays one flag away (`--model smollm2`) as a real chat LLM.
DEFAULT_MODEL = "lab"
# A model's own verifier: what a strategy that needs one gets when --verifier is not given
# (reasoning.strategies.default_verifier decides when).
DEFAULT_VERIFIERS = {"lab": "prm:lab", "lab-s": "prm:lab", "lab-xs": "prm:lab"}

MODELS = {
    # SmolLM2 does far better with worked examples than with its chat template (22.5% vs 7.5% greedy).
    "smollm2": Entry(_embedded_folder, "SmolLM2-135M-Instruct (embedded)", "fewshot"),
    # The lab reasoner trained by this repo (reasoning/lab): its chat template renders the plain
    # "Question: ...\nAnswer:\n" prompt it was trained on.
    "lab": Entry(_lab_folder, "ThinkTrace lab reasoner (~1M, trained here)", "chat"),
    # The lab reasoner taught to think first: it checks each step in a digit-aligned layout and redoes
    # the ones a check rejects ("Wait, ..."), so thinking budgets change what it gets right.
    "lab-think": Entry(_thinker_folder, "ThinkTrace lab thinker (~1M, trained here)", "chat", thinking=True),
    # The ladder of smaller lab reasoners (issue 16): the same data and steps, only the size differs;
    # the lab PRM scores their steps too (same tokenizer, same solution format).
    "lab-s": Entry(_ladder_folder("s"), "ThinkTrace lab reasoner, size s (~0.4M, trained here)", "chat"),
    "lab-xs": Entry(_ladder_folder("xs"), "ThinkTrace lab reasoner, size xs (~0.16M, trained here)", "chat"),
    # The arclab model (issue 19): reads a task's demonstrations as text and writes the test output;
    # --strategy ttt adapts it to each task at test time (its chat template passes the task through).
    "lab-arc": Entry(_arc_folder, "ThinkTrace lab-arc (~0.9M, trained here on arclab tasks)", "chat"),
}


# The settings each backend takes (CLI flags, stored with a run in params["backend_options"]).
BACKENDS = {
    "transformers": {"dtype"},
    "vllm": {"dtype", "gpu_memory_utilization", "tensor_parallel_size", "max_model_len",
             "enable_prefix_caching", "enforce_eager"},
    "openai": {"base_url", "timeout", "concurrency", "model_params", "api"},
}


# Problems in flight by default (`--concurrency`), per backend: enough rows per batch to pay on 2 CPU
# cores (bench/concurrency.py), enough sequences to keep a GPU busy, and a server's requests in flight.
DEFAULT_CONCURRENCY = {"transformers": 16, "transformers-cuda": 64, "vllm": 256, "openai": 16}


def default_concurrency(lm) -> int:
    """The default number of problems in flight for a loaded model (1 for a backend not listed)."""
    backend = getattr(lm, "backend", "")
    if backend == "transformers" and str(getattr(lm, "device", "cpu")).startswith("cuda"):
        backend = "transformers-cuda"
    return DEFAULT_CONCURRENCY.get(backend, 1)


def call_seed(base: int, call: int) -> int:
    """The seed of a problem's `call`-th model call: the same problem always sees the same draws, and
    its calls see different ones (the runner's MeteredLM, the Learn page's lessons)."""
    return (base + 7919 * call) % 2**31


def check_concurrency(concurrency: int | None) -> None:
    if concurrency is not None and concurrency < 1:
        raise UserError(f"--concurrency must be at least 1 (got {concurrency})")


def check_backend(backend: str, options: dict) -> None:
    """Refuse an unknown backend, a setting it does not take, or openai without a server URL."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    flags = lambda names: ", ".join("--" + n.replace("_", "-") for n in sorted(names))  # noqa: E731
    if extra := set(options) - BACKENDS[backend]:
        raise UserError(f"{flags(extra)} cannot be used with --backend {backend} (it takes: "
                        f"{flags(BACKENDS[backend])})")
    if backend == "openai" and not options.get("base_url"):
        raise UserError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
    if options.get("api", "completions") not in ("completions", "chat"):
        raise UserError(f"--api must be completions or chat (got {options['api']!r})")
    if options.get("model_params") is not None and not options["model_params"] >= 1:
        raise UserError(f"--model-params must be a parameter count of at least 1 (got {options['model_params']})")


def resume_options(backend: str, stored: dict, base_url: str | None, what: str) -> dict:
    """The backend settings to resume `what` (a run or sweep) with: the stored ones, and the server
    the user names now (`--base-url`, which replaces a stored one: the server moved). A server
    address never comes from imported data (importing drops it, docs/sharing.md), so an openai run
    without one is refused, before any model loads, until the user names the server: the API key
    goes only to a URL given in this session or stored by a run started here."""
    options = dict(stored)
    if base_url is not None:
        options["base_url"] = base_url
    if backend == "openai" and not options.get("base_url"):
        raise UserError(f"{what} runs on an OpenAI-compatible server whose address is not stored (runs "
                        f"from a bundle carry none): pass --base-url URL, e.g. http://127.0.0.1:8000/v1")
    check_backend(backend, options)
    return options


def load_model(spec: str = DEFAULT_MODEL, *, device: str | None = None, dtype: str | None = None,
               backend: str = "transformers", **options) -> LanguageModel:
    """Load a registry name, a local HF folder or a hub id (from the local cache first) on a backend.
    vllm takes `options` gpu_memory_utilization, tensor_parallel_size, max_model_len,
    enable_prefix_caching, enforce_eager; openai takes base_url (required), timeout, concurrency,
    model_params (the served model's size, for FLOPs axes), and `spec` is then the model name the
    server serves."""
    check_backend(backend, {**options, **({"dtype": dtype} if dtype else {})})
    if backend == "openai":
        return _load_openai(spec, **options)
    if spec in MODELS:
        entry = MODELS[spec]
        folder, name, style = entry.folder(), entry.name, entry.prompt_style
    else:
        folder, name, style = resolve(spec), spec, "chat"
    if backend == "vllm":
        from reasoning.backends.vllm_lm import VLLMLM  # a clear UserError when vllm is not installed

        return VLLMLM(folder, name=name, model_id=spec, prompt_style=style, dtype=dtype, **options)
    from reasoning.backends.transformers_lm import TransformersLM

    try:
        return TransformersLM(folder, name=name, model_id=spec, prompt_style=style, device=device, dtype=dtype)
    except (OSError, ValueError) as e:  # broken or unsupported checkpoint
        raise UserError(f"cannot load model '{spec}' from {folder}: {str(e).splitlines()[0]}") from e


def _load_openai(spec: str, base_url: str, model_params: int | None = None, **options) -> LanguageModel:
    """A model behind an OpenAI-compatible server. A registry name is prompted as on the local
    backends (the server must serve it under that name: `vllm serve DIR --served-model-name NAME`);
    any other name gets the plain few-shot prompt, which needs no tokenizer here. The API does not
    say how big the model is: `model_params` (--model-params), else a registry model's own count,
    else 0 (runs then have no FLOPs axes)."""
    from reasoning.backends.openai_lm import OpenAILM

    style, tokenizer = "fewshot", None
    if spec in MODELS and MODELS[spec].prompt_style == "chat" and options.get("api") != "chat":
        from transformers import AutoTokenizer

        style, tokenizer = "chat", AutoTokenizer.from_pretrained(MODELS[spec].folder())
    if model_params is None and spec in MODELS:
        model_params = count_params(MODELS[spec].folder())
    return OpenAILM(base_url, spec, prompt_style=style, tokenizer=tokenizer, n_params=int(model_params or 0),
                    **options)


def count_params(folder: Path) -> int:
    """Parameters in a folder's safetensors files, read from their headers (no weights loaded): the
    FLOPs axes need it and vLLM does not say."""
    total = 0
    for file in folder.glob("*.safetensors"):
        with open(file, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for key, info in header.items():
            if key != "__metadata__":
                total += math.prod(info["shape"])
    return total


def resolve(spec: str) -> Path:
    """A local folder for `spec`: the folder itself, or the hub snapshot, downloaded when allowed."""
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        if not path.is_dir():
            raise UserError(f"no model folder at {path}: pass an existing folder, a Hugging Face id or one of: "
                            f"{', '.join(MODELS)}")
        if not (path / "config.json").is_file():
            raise UserError(f"{path} has no config.json: pass a folder saved by transformers' save_pretrained")
        return path
    return _hub_snapshot(spec)


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except HFValidationError:
        raise UserError(f"'{repo_id}' is neither a model folder nor a Hugging Face model id (org/name); "
                        f"known names: {', '.join(MODELS)}") from None
    except LocalEntryNotFoundError:
        pass
    unreachable = (f"model '{repo_id}' is not in the local Hugging Face cache and the hub cannot be reached: "
                   f"download it on a connected machine (`hf download {repo_id}`) and copy the cache, "
                   f"or pass a local folder")
    if _hub_offline():
        raise UserError(unreachable)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except GatedRepoError:
        raise UserError(f"model '{repo_id}' is gated: accept its licence on huggingface.co and run "
                        f"`hf auth login`") from None
    except RepositoryNotFoundError:
        raise UserError(f"model '{repo_id}' does not exist on the Hugging Face hub: check the id, "
                        f"or pass a local folder") from None
    except (LocalEntryNotFoundError, OSError):
        raise UserError(unreachable) from None


def _hub_offline() -> bool:
    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def free_cores() -> int:
    """Torch threads to use: usable cores minus those other work keeps busy (THINKTRACE_THREADS
    overrides). Oversubscribed cores cut generation throughput tenfold on shared machines."""
    if threads := os.environ.get("THINKTRACE_THREADS"):
        return max(1, int(threads))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)

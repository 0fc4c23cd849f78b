"""Flags several commands share, defined once so their names and help never drift: the database
(`--db`, every command that reads or writes runs), `--json`, and the backend flags of `run` and `sweep`."""
from __future__ import annotations

import typer

DbOption = typer.Option(None, "--db", help="SQLite file or database URL (default: $THINKTRACE_DB or ./thinktrace.db)")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
BackendOption = typer.Option("transformers", "--backend", help="transformers | vllm (pip install vllm==0.32.0) | openai (an OpenAI-compatible server at --base-url; key from $THINKTRACE_API_KEY or $OPENAI_API_KEY).")
BaseUrlOption = typer.Option(None, "--base-url", help="openai backend: the server's API root, e.g. http://127.0.0.1:8000/v1.")
DtypeOption = typer.Option(None, "--dtype", help="transformers / vllm: float32 | bfloat16 | float16 (default: bf16 on GPUs, fp32 on CPUs).")
GpuMemoryOption = typer.Option(None, "--gpu-memory-utilization", help="vllm: share of GPU memory for weights + KV cache (default 0.9; lower it to fit a PRM beside the policy).")
TensorParallelOption = typer.Option(None, "--tensor-parallel-size", help="vllm: GPUs to split the model across.")
MaxModelLenOption = typer.Option(None, "--max-model-len", help="vllm: context length (smaller leaves more memory for the KV cache).")
ModelParamsOption = typer.Option(None, "--model-params", help="openai: the served model's parameter count, e.g. 7.6e9, for the FLOPs axes of curves (the API does not say it; the lab and smollm2 models count their own).")


def backend_options(**given) -> dict:
    """The backend settings that were given (stored with a run or sweep; checked by check_backend).
    A parameter count typed as 7.6e9 is stored as the integer it means."""
    if given.get("model_params") is not None and float(given["model_params"]).is_integer():
        given["model_params"] = int(given["model_params"])
    return {name: value for name, value in given.items() if value is not None}

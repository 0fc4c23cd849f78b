"""Where a torch model runs and in what precision, for every model this repo loads with torch (the
transformers backend, PRM verifiers, the lab's arithmetic checker): one dtype table, one default,
one error message, and the CPU thread count."""
from __future__ import annotations

import torch

from reasoning.backends import free_cores
from reasoning.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_device(device: str | None = None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def placement(device: str | None, dtype: str | None) -> tuple[str, str]:
    """(device, dtype name) for a model about to load: CUDA when there is one, and bf16 there; fp32
    on CPUs, where bf16 is slower without AVX-512 and fp16 kernels are slow. On a CPU, torch gets
    the cores other work leaves free (oversubscribed cores cut throughput tenfold)."""
    device = default_device(device)
    dtype = dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype '{dtype}': use one of {', '.join(DTYPES)}")
    if device == "cpu":
        torch.set_num_threads(free_cores())
    return device, dtype


# Rows per forward batch. A model under SMALL_MODEL_PARAMS (the lab's, ~1M parameters) keeps a few KB
# of state per token, so wide batches cost little memory and are what make it fast with many problems
# in flight (bench/concurrency.py); a larger model keeps its backend's default, as its KV cache or
# activations bound memory.
SMALL_MODEL_PARAMS = 10_000_000
SMALL_MODEL_ROWS = 256


def batch_rows(n_params: int, default: int) -> int:
    return SMALL_MODEL_ROWS if n_params < SMALL_MODEL_PARAMS else default

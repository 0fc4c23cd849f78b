"""`serve`: an OpenAI-compatible server over the engine (thinktrace/serve.py); every request is a
stored problem with its tree. The run flags (--strategy, --n, --verifier, every knob) are the
defaults a request may override."""
from __future__ import annotations

import os
from typing import Optional

import typer

from reasoning.backends import DEFAULT_MODEL, check_concurrency
from reasoning.config import knobs
from reasoning.errors import UserError
from reasoning.strategies import names as strategy_names
from thinktrace.cli.options import (ApiOption, BackendOption, BaseUrlOption, ConcurrencyOption, DbOption, DtypeOption,
                                   GpuMemoryOption, KnobCommand, MaxModelLenOption, ModelParamsOption,
                                   TensorParallelOption, backend_options, whole)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but a loopback address needs $THINKTRACE_API_KEY."),
    port: int = typer.Option(8000, "--port", parser=whole, help="Port to listen on."),
    strategy: str = typer.Option("cot", "--strategy", "-s"),  # its help lists the strategies
    knobs: Optional[dict] = None,  # every knob's option: the defaults of a request
    verifier: Optional[str] = typer.Option(None, "--verifier", "-v", help="Default verifier of requests (and the one their calls share batches on); the model's own (prm:lab for the lab models) is loaded too."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let a PRM run model code shipped with its checkpoint."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The served model, as for run: lab, lab-think, smollm2, an HF id or folder; with --backend openai, the upstream server's model (a proxy)."),
    backend: str = BackendOption,
    base_url: Optional[str] = BaseUrlOption,
    dtype: Optional[str] = DtypeOption,
    gpu_memory_utilization: Optional[float] = GpuMemoryOption,
    tensor_parallel_size: Optional[int] = TensorParallelOption,
    max_model_len: Optional[int] = MaxModelLenOption,
    model_params: Optional[float] = ModelParamsOption,
    api: Optional[str] = ApiOption,
    concurrency: Optional[int] = ConcurrencyOption,
    queue_size: int = typer.Option(256, "--queue-size", parser=whole, help="Requests that may wait beyond those in flight; more get HTTP 429."),
    db: Optional[str] = DbOption,
):
    """Serve the engine as an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health)."""
    from reasoning.config import SearchConfig
    from store import Store
    from thinktrace.runner import RunRequest
    from thinktrace.serve import API_KEY_ENV, DATASET, Defaults, check_bind, check_port, create_app, load_worker, serve as run_server

    api_key = os.environ.get(API_KEY_ENV) or None
    check_bind(host, api_key)
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535 (got {port})")
    if queue_size < 0:
        raise UserError(f"--queue-size must be at least 0 (got {queue_size})")
    check_concurrency(concurrency)
    check_port(host, port)
    options = backend_options(base_url=base_url, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                              tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                              model_params=model_params, api=api)
    # The defaults must make a valid run themselves (a request that overrides nothing runs them).
    RunRequest(strategy=strategy, dataset=DATASET, model=model, verifier=verifier, config=SearchConfig(**knobs),
               backend=backend, backend_options=options).validate()
    store = Store.open(db)  # checked before the slow model load
    defaults = Defaults(model=model, strategy=strategy, verifier=verifier, knobs=dict(knobs), backend=backend,
                        backend_options=options)
    worker = load_worker(store, defaults, concurrency, queue_size, trust_remote_code)
    typer.echo(f"serving {model} ({strategy}) on http://{host}:{port}/v1 — requests are stored in {store.url}; "
               f"Ctrl-C stops after the requests in flight", err=True)
    try:
        run_server(create_app(worker, defaults, api_key), host, port)
    except KeyboardInterrupt:  # uvicorn re-raises the signal it shut down on, once it has
        pass
    worker.stop(timeout=0)  # when uvicorn did not run the lifespan (a failed bind): mark the runs


def _strategy_option():
    return typer.Option("cot", "--strategy", "-s", help="Default strategy of requests: " + " | ".join(strategy_names()))


def register(app: typer.Typer) -> None:
    app.command("serve")(KnobCommand(serve, lambda: [knob for knob in knobs().values() if knob.cli],
                                     options={"strategy": _strategy_option}, lead=("n",)))

"""`python -m reasoning`: run strategies, list and show runs, resume. People script against this:
commands, flags and `--json` shapes stay stable, and every user error is one line with exit code 2."""
from __future__ import annotations

import signal
import sys
from typing import Optional

import typer

from reasoning.backends import DEFAULT_MODEL, check_concurrency
from thinktrace.cli.options import (BackendOption, BaseUrlOption, ApiOption, ConcurrencyOption, DbOption, DtypeOption, GpuMemoryOption, JsonOption,
                                   KnobCommand, MaxModelLenOption, ModelParamsOption, PresetOption, SeedsOption,
                                   TensorParallelOption, parse_seeds, print_json, whole)
from thinktrace.cli.options import backend_options as backend_options_of
from reasoning.config import SearchConfig, knobs
from reasoning.errors import UserError
from reasoning.strategies import names as strategy_names

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ThinkTrace: run and inspect test-time reasoning strategies.")


# The signal that stopped this process (Ctrl-C unless SIGTERM came): it exits with 128 + it, as shells
# report a process a signal ended (130, 143), so a script or the app can tell a stop from success.
_stopped_by = {"signum": signal.SIGINT}


def _signals_as_interrupt() -> None:
    """Ctrl-C and SIGTERM (a stop button, `kill`) both raise KeyboardInterrupt, so the run is left
    `interrupted` (resumable) either way; which one came decides the exit code."""
    def handler(signum, frame):
        _stopped_by["signum"] = signum
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with Ctrl-C ignored
        signal.signal(signal.SIGINT, handler)


class Interrupted(Exception):
    """A run or sweep stopped by a signal, with what to tell the user. Not a KeyboardInterrupt:
    typer turns those into a plain exit code, and this one must reach `main` with its message."""


def _execute(store, run_id: str, lm, verifier, total: int, as_json: bool, concurrency: int | None = None):
    from tqdm import tqdm

    from thinktrace import runner
    from store.runs import run_summary

    summary = run_summary(store, run_id)
    bar = tqdm(total=total, initial=summary.problems_done, unit="problem", dynamic_ncols=True,
               desc=summary.strategy, disable=None)
    stats = {"correct": summary.correct, "graded": summary.graded, "tokens": summary.tokens}

    def on_problem(result, problem):
        stats["tokens"] += result.tokens
        if result.correct is not None:
            stats["graded"] += 1
            stats["correct"] += int(result.correct)
        acc = f"{stats['correct']}/{stats['graded']}" if stats["graded"] else "-"
        bar.set_postfix(acc=acc, tokens=stats["tokens"])
        bar.update(1)

    try:
        runner.execute(store, run_id, lm, verifier, on_problem=on_problem, concurrency=concurrency)
    except KeyboardInterrupt as exc:
        bar.close()
        raise Interrupted(f"interrupted: run {run_id} is resumable with `python -m reasoning resume {run_id}`") from exc
    bar.close()
    _print_summary(run_summary(store, run_id), as_json)


def _load_models(model: str, verifier_spec: str | None, trust_remote_code: bool = False,
                 backend: str = "transformers", backend_options: dict | None = None):
    from reasoning.backends import load_model
    from reasoning.verifiers import load_verifier

    lm = load_model(model, backend=backend, **(backend_options or {}))  # dtype is one of them
    return lm, load_verifier(verifier_spec, lm, trust_remote_code=trust_remote_code)


def _print_summary(s, as_json: bool) -> None:
    if as_json:
        print_json(s.to_json())
        return
    acc = f"{s.correct}/{s.graded} = {100 * s.accuracy:.1f}%" if s.accuracy is not None else "n/a (no gold answers)"
    bound = " (oracle verifier: an upper bound, not an achievable accuracy)" if s.evaluation_only else ""
    typer.echo(f"run {s.id} {s.status}: {s.problems_done}/{s.problems_total} problems, accuracy {acc}{bound}, "
               f"{s.tokens} tokens, {s.model_calls} model calls, {s.wall_seconds:.1f} s")


def run(
    strategy: str = typer.Option(..., "--strategy", "-s"),  # its help lists the strategies: _strategy_option
    verifier: Optional[str] = typer.Option(None, "--verifier", "-v", help="none | self_eval | oracle (evaluation only) | logprob | entropy | deepconf[:W] | prm:MODEL[@CONVENTION]; strategies that need one get prm:lab with --model lab, lab-s or lab-xs."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let a PRM run model code shipped with its checkpoint (Qwen2.5-Math-PRM needs it)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="lab (the embedded lab reasoner, with its PRM prm:lab), lab-think (the embedded lab thinker: <think> first), lab-s / lab-xs (smaller lab reasoners, same data and steps; prm:lab as their verifier), smollm2 (embedded SmolLM2-135M chat model), an HF model id or a local folder; with --backend openai, the name the server serves. A thinking model's thinking comes on top of --max-new-tokens: up to 4096 tokens, or --max-think-tokens."),
    backend: str = BackendOption,
    base_url: Optional[str] = BaseUrlOption,
    dtype: Optional[str] = DtypeOption,
    gpu_memory_utilization: Optional[float] = GpuMemoryOption,
    tensor_parallel_size: Optional[int] = TensorParallelOption,
    max_model_len: Optional[int] = MaxModelLenOption,
    model_params: Optional[float] = ModelParamsOption,
    api: Optional[str] = ApiOption,
    concurrency: Optional[int] = ConcurrencyOption,
    dataset: str = typer.Option("arith:2", "--dataset", "-d", help="arith:D (D=1..5), arith:A-B, gsm8k, math500[:level=L,subject=S], FILE.jsonl or hf:NAME[:split]"),
    limit: Optional[int] = typer.Option(None, "--limit", "-k", parser=whole, help="Use the first K problems."),
    seed: int = typer.Option(0, "--seed", parser=whole, help="Seed for problems and sampling: same seed, same run."),
    seeds: Optional[str] = SeedsOption,
    preset: Optional[str] = PresetOption,
    knobs: Optional[dict] = None,  # the knob options given (--n, --temperature, ...): see KnobCommand
    name: str = typer.Option("", "--name", help="A label for the run."),
    db: Optional[str] = DbOption,
    as_json: bool = JsonOption,
    run_id: Optional[str] = typer.Option(None, "--run-id", hidden=True, help="Use this id (the app assigns one)."),
):
    """Run a strategy over a problem set; every node lands in the store."""
    from reasoning.presets import preset_values
    from reasoning.problems import load_problems
    from thinktrace.runner import RunRequest, check_gold, create_run, prepare
    from store import Store

    cfg = SearchConfig(**preset_values(preset, knobs))  # a preset's values, the flags given on top
    seed_list = parse_seeds(seeds)
    backend_options = backend_options_of(base_url=base_url, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                         tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                                         model_params=model_params, api=api)
    request = RunRequest(strategy=strategy, dataset=dataset, model=model, verifier=verifier, limit=limit,
                         seed=seed, name=name, config=cfg, backend=backend, backend_options=backend_options,
                         preset=preset).validate()
    check_concurrency(concurrency)
    problems = load_problems(dataset, limit=limit, seed=seed)
    check_gold(request, problems)  # before the slow model load
    store = Store.open(db)  # checked before the slow model load
    if seed_list is not None:
        return _run_seeds(store, request, seed_list, trust_remote_code, concurrency, as_json, run_id)
    prepare(store, request)  # compute_optimal: its policy's plan, checked before the slow model load
    lm, verifier_obj = _load_models(model, request.verifier, trust_remote_code, backend, backend_options)
    rid = create_run(store, request, problems, lm, verifier_obj, run_id=run_id)
    if not as_json:
        typer.echo(f"run {rid}")
    _execute(store, rid, lm, verifier_obj, len(problems), as_json, concurrency)


def _run_seeds(store, request, seeds: list[int], trust_remote_code: bool, concurrency, as_json: bool,
               run_id: str | None) -> None:
    """`run --seeds`: one run per seed on the problems of --seed, grouped as a sweep (`repeat`), so
    `curves GROUP` and the Budget page average them."""
    from store.runs import run_summary
    from store.sweeps import sweep_runs
    from thinktrace.sweep import SweepInterrupted, SweepSpec, run_spec

    if run_id is not None:
        raise UserError("--run-id names one run, and --seeds makes one per seed: leave one of them out")
    spec = SweepSpec(strategies=[request.strategy], budgets=[request.config.n], dataset=request.dataset,
                     limit=request.limit, seed=request.seed, model=request.model, verifier=request.verifier,
                     config=request.config, name=request.name, backend=request.backend,
                     backend_options=request.backend_options, seeds=seeds, preset=request.preset,
                     repeat=True).validate()  # before the slow model load
    lm, verifier_obj = _load_models(request.model, request.verifier, trust_remote_code, request.backend,
                                    request.backend_options)
    try:
        sid = run_spec(store, spec, lm=lm, verifier_obj=verifier_obj, concurrency=concurrency)
    except SweepInterrupted as exc:
        raise Interrupted(f"interrupted: finish the runs with `python -m reasoning sweep --resume {exc.sweep_id}`"
                          ) from exc
    summaries = [run_summary(store, r.id) for r in sorted(sweep_runs(store, sid), key=lambda r: seeds.index(r.seed))]
    if as_json:
        print_json({"sweep": sid, "runs": [s.to_json() for s in summaries]})
        return
    typer.echo(f"sweep {sid} ({len(summaries)} runs, seeds {','.join(map(str, seeds))}): "
               f"`python -m reasoning curves {sid[:8]}` averages them")
    for summary in summaries:
        _print_summary(summary, as_json=False)


def _strategy_option():
    return typer.Option(..., "--strategy", "-s", help=" | ".join(strategy_names()))


app.command("run")(KnobCommand(run, lambda: [knob for knob in knobs().values() if knob.cli],
                               options={"strategy": _strategy_option}, lead=("n",)))


@app.command()
def resume(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."), db: Optional[str] = DbOption,
           as_json: bool = JsonOption,
           trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="As for run (not stored with the run)."),
           base_url: Optional[str] = BaseUrlOption, concurrency: Optional[int] = ConcurrencyOption):
    """Finish an interrupted or failed run; finished problems are kept, the rest redone with the same seeds."""
    from reasoning.backends import resume_options
    from thinktrace.runner import request_of
    from store import Store
    from store import models as m
    from store.liveness import effective_status, worker_label
    from store.runs import get_run, resolve_run_id

    check_concurrency(concurrency)
    store = Store.open(db)
    rid = resolve_run_id(store, run_id)
    run = get_run(store, rid)
    status, request, total, worker = effective_status(run), request_of(run), run.n_problems, worker_label(run)
    if status == m.DONE:
        raise UserError(f"run {rid} is already done")
    if status == m.RUNNING:
        raise UserError(f"run {rid} is still running ({worker})")
    options = resume_options(request.backend, request.backend_options, base_url, f"run {rid}")
    lm, verifier = _load_models(request.model, request.verifier, trust_remote_code, request.backend, options)
    _execute(store, rid, lm, verifier, total, as_json, concurrency)


@app.command("runs")
def list_runs_cmd(db: Optional[str] = DbOption, as_json: bool = JsonOption):
    """List runs, newest first."""
    from store import Store
    from store.runs import list_runs

    rows = list_runs(Store.open(db))
    if as_json:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        typer.echo("no runs yet: try `python -m reasoning run --strategy cot --limit 3`")
        return
    header = f"{'id':8}  {'name':32}  {'strategy':16}  {'n':>3}  {'model':24}  {'status':11}  {'done':>7}  {'accuracy':>8}"
    typer.echo(header)
    for r in rows:
        acc = f"{100 * r.accuracy:.1f}%" if r.accuracy is not None else "-"
        typer.echo(f"{r.id[:8]}  {r.name[:32]:32}  {r.strategy:16}  {r.n or '-':>3}  {r.model[:24]:24}  "
                   f"{r.status:11}  {f'{r.problems_done}/{r.problems_total}':>7}  {acc:>8}")


@app.command()
def show(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."), db: Optional[str] = DbOption,
         as_json: bool = JsonOption):
    """A run's summary and its per-problem results."""
    from store import Store
    from store.runs import resolve_run_id, run_results, run_summary

    store = Store.open(db)
    rid = resolve_run_id(store, run_id)
    summary, results = run_summary(store, rid), run_results(store, rid)
    if as_json:
        out = summary.to_json()
        out["results"] = [
            {"position": r.position, "key": r.key, "question": r.question, "gold": r.gold, "answer": r.answer,
             "correct": r.correct, "tokens": r.tokens, "model_calls": r.model_calls,
             "verifier_calls": r.verifier_calls, "difficulty": r.difficulty, "votes": r.votes}
            for r in results
        ]
        print_json(out)
        return
    _print_summary(summary, as_json=False)
    typer.echo(f"name: {summary.name}\nmodel: {summary.model}  verifier: {summary.verifier or '-'}  "
               f"dataset: {summary.dataset}  seed: {summary.seed}")
    if summary.error:
        typer.echo(f"error: {summary.error}")
    for r in results:
        mark = {True: "right", False: "wrong", None: "?"}[r.correct]
        question = " ".join(r.question.split())
        typer.echo(f"[{r.position}] {mark:5} gold={r.gold} answer={r.answer} tokens={r.tokens}  {question[:90]}")


# Command groups that live in their own modules: each has `register(app)` and imports heavy things
# lazily inside its commands, so `python -m reasoning --help` stays fast.
COMMAND_MODULES: list[str] = ["thinktrace.cli.share", "thinktrace.cli.curves", "thinktrace.cli.lab", "thinktrace.cli.policy", "thinktrace.cli.scale", "thinktrace.cli.serve"]


def _register_commands() -> None:
    from importlib import import_module

    for name in COMMAND_MODULES:
        import_module(name).register(app)


def main() -> None:
    _register_commands()
    _signals_as_interrupt()
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit (typer: 130 on Ctrl-C)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Interrupted as exc:
        typer.echo(str(exc), err=True)
        sys.exit(128 + _stopped_by["signum"])
    except (typer.Abort, KeyboardInterrupt):  # end of input at a prompt; a signal before the command runs
        typer.echo("interrupted", err=True)
        sys.exit(128 + _stopped_by["signum"])
    except typer.BadParameter as exc:  # a flag's value: one line, like every other user error
        typer.echo(f"error: {exc.format_message().replace('Value error, ', '')}", err=True)  # pydantic's prefix
        sys.exit(2)
    except typer.TyperException as exc:  # usage errors: unknown options, missing arguments
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if code == 130:  # a Ctrl-C or SIGTERM outside a run (e.g. while the model loads)
        typer.echo("interrupted", err=True)
        code = 128 + _stopped_by["signum"]
    sys.exit(code if isinstance(code, int) else 0)

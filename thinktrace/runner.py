"""Runs a strategy over problems and streams every node to the store; resumes what was cut off.

A problem counts as done only when its Result is committed, in the same transaction as its last
nodes; resuming deletes the partial nodes of unfinished problems and redoes them with the same
seeds, so an interrupted-then-resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import reasoning
from reasoning.answers import is_equiv
from reasoning.backends import DEFAULT_MODEL, call_seed, check_backend, check_concurrency, default_concurrency
from reasoning.config import AUTO, SearchConfig
from reasoning.errors import UserError
from reasoning.presets import lookup_preset
from reasoning.problems import dataset_extractor
from reasoning.scheduler import Scheduler
from reasoning.strategies import check_config, check_endpoint, check_problems, check_strategy, default_verifier, get_strategy, lookup
from reasoning.tree import Tree
from reasoning.types import Problem
from reasoning.verifiers import check_verifier_spec
from store import Store, liveness, runs
from store import models as m
from store.runs import NodeWriter


@dataclass
class RunRequest:
    """What a user asks for; everything needed to create (and later repeat) a run."""

    strategy: str
    dataset: str
    model: str = DEFAULT_MODEL
    verifier: str | None = None  # None: the model's own verifier where the strategy needs one
    # transformers | vllm | openai, and its settings (base_url, gpu_memory_utilization, dtype, ...):
    # stored with the run so `resume` loads the model the same way. Never an API key.
    backend: str = "transformers"
    backend_options: dict = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0  # the sampling seed (problem_seed); also the problems' unless problem_seed says otherwise
    name: str = ""
    config: SearchConfig = field(default_factory=SearchConfig)
    preset: str | None = None  # the preset the config came from (reasoning.presets), stored with the run
    # The seed the problems were drawn with, when not `seed` (a run of `--seeds`: every seed's run
    # solves the problems of one seed). None: `seed`.
    problem_seed: int | None = None

    @property
    def problems_seed(self) -> int:
        return self.seed if self.problem_seed is None else self.problem_seed

    def validate(self) -> "RunRequest":
        if self.preset is not None:
            lookup_preset(self.preset)
        if self.config.extractor == AUTO:  # the dataset's own, stored as its name
            self.config = self.config.replace(extractor=dataset_extractor(self.dataset))
        self.verifier = default_verifier(self.strategy, self.model, self.verifier)
        check_strategy(self.strategy, self.verifier)
        check_verifier_spec(self.verifier)
        check_config(self.strategy, self.config)
        check_backend(self.backend, self.backend_options)
        check_endpoint(self.strategy, self.backend_options, self.config, self.backend)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1 (got {self.limit})")
        return self


def check_gold(request: RunRequest, problems: list[Problem]) -> None:
    """The oracle verifier scores by the gold answer: refuse it on a question that has none (it would
    score every path 0.5 and select at random while looking like an upper bound). And a strategy that
    learns from demonstrations (ttt) needs problems that have them."""
    missing = next((p for p in problems if p.answer is None), None)
    if request.verifier == "oracle" and missing is not None:
        raise UserError(f"the oracle verifier needs gold answers, and problem {missing.key!r} of "
                        f"{request.dataset} has none: choose another verifier")
    check_problems(request.strategy, problems)


def prepare(store: Store, request: RunRequest) -> None:
    """What a run needs from the store before it starts: compute_optimal's plan from its policy."""
    from thinktrace.policy import STRATEGY, attach_plan

    if request.strategy == STRATEGY:
        attach_plan(store, request)


def create_run(store: Store, request: RunRequest, problems: list[Problem], lm, verifier,
               run_id: str | None = None, sweep_id: str | None = None) -> str:
    """Record the run (and its sweep, if any) and its problem list; nothing model-related runs here."""
    if not problems:
        raise UserError(f"dataset {request.dataset} has no problems")
    check_gold(request, problems)
    if request.config.system_prompt:  # the model can put it (a chat template), before anything is written
        MeteredLM(lm, 0, request.config.system_prompt).prompt(problems[0].question)
    run = m.Run(
        name=request.name or default_name(request),
        strategy=request.strategy,
        params={**request.config.to_dict(), "dataset": request.dataset, "limit": request.limit,
                "model": request.model, "verifier": request.verifier, "backend": request.backend,
                "backend_options": request.backend_options,
                **({"preset": request.preset} if request.preset else {}),
                **({"problem_seed": request.problem_seed} if request.problem_seed is not None else {})},
        model_backend=getattr(lm, "backend", "unknown"),
        model_id=getattr(lm, "model_id", request.model),
        model_name=lm.name,
        model_dtype=getattr(lm, "dtype", ""),
        model_params=getattr(lm, "n_params", 0),
        verifier=request.verifier or None,
        verifier_params=getattr(verifier, "n_params", 0) if verifier else 0,
        evaluation_only=bool(verifier and verifier.evaluation_only),
        aggregate=request.config.aggregate,
        dataset=request.dataset,
        seed=request.seed,
        app_version=reasoning.__version__,
        n_problems=len(problems),
        sweep_id=sweep_id,
    )
    if run_id:
        run.id = run_id
    return runs.create_run(store, run, problems)


def default_name(request: RunRequest) -> str:
    """e.g. "best_of_n n=8 self_eval on arith:2"; n only where it is the strategy's budget (not cot's)."""
    budget = f" n={request.config.n}" if "n" in lookup(request.strategy).budget else ""
    verifier = f" {request.verifier}" if request.verifier else ""
    return f"{request.strategy}{budget}{verifier} on {request.dataset}"


def request_of(run: m.Run) -> RunRequest:
    """Rebuild the request a run was made from (for resume and for 'repeat this run')."""
    p = run.params
    return RunRequest(strategy=run.strategy, dataset=p.get("dataset", run.dataset),
                      model=p.get("model", run.model_id), verifier=run.verifier, limit=p.get("limit"),
                      seed=run.seed, name=run.name, config=SearchConfig.from_dict(p, run.strategy),
                      backend=p.get("backend", "transformers"), backend_options=p.get("backend_options") or {},
                      preset=p.get("preset"), problem_seed=p.get("problem_seed"))


class MeteredLM:
    """Counts calls, generated tokens and prompt tokens per problem, gives every call a seed derived
    from the problem's seed and the call's index, so the same problem always sees the same random
    draws, and puts questions with the run's system prompt (--system-prompt, a preset's) when it has one.

    Prompt tokens are the prefill a call asks for: each distinct prompt of a call once (its n samples
    share it), counted whole, as a model without a prefix cache reads it; None when the model cannot
    count them (a server without a local tokenizer)."""

    def __init__(self, lm, problem_seed: int, system_prompt: str = ""):
        self.lm, self.problem_seed, self.system_prompt = lm, problem_seed, system_prompt
        self.calls = self.tokens = self.train_tokens = 0
        self.prompt_tokens: int | None = 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def prompt(self, question: str) -> str:
        if self.system_prompt:
            return self.lm.prompt(question, system_prompt=self.system_prompt)
        return self.lm.prompt(question)

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        if seed is None:
            seed = call_seed(self.problem_seed, self.calls)
        self.calls += 1
        self._count_prompts(prompts)
        out = self.lm.complete(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                               stop=stop, seed=seed, top_p=top_p)
        self.tokens += sum(c.n_tokens for row in out for c in row)
        return out

    def adapt_complete(self, texts, prompts, *, train, n, max_new_tokens, temperature, stop=None, seed=None):
        """Test-time training (the backend's adapt_complete): its generated tokens count as any call's;
        the tokens it trained on are kept apart (train_tokens: training FLOPs = 6 N D)."""
        if seed is None:
            seed = call_seed(self.problem_seed, self.calls)
        self.calls += 1
        self._count_prompts(prompts)
        log, out = self.lm.adapt_complete(texts, prompts, train=train, n=n, max_new_tokens=max_new_tokens,
                                          temperature=temperature, stop=stop, seed=seed)
        self.tokens += sum(c.n_tokens for row in out for c in row)
        self.train_tokens += log.tokens
        return log, out

    def _count_prompts(self, prompts) -> None:
        count = getattr(self.lm, "count_tokens", None)
        for prompt in dict.fromkeys(prompts):
            tokens = count(prompt) if count is not None and self.prompt_tokens is not None else None
            self.prompt_tokens = None if tokens is None else self.prompt_tokens + tokens


class MeteredVerifier:
    def __init__(self, verifier):
        self.verifier, self.calls = verifier, 0

    def score(self, question, paths, gold=None):
        self.calls += 1
        return self.verifier.score(question, paths, gold=gold)

    def __getattr__(self, name):
        attr = getattr(self.verifier, name)
        if name != "score_nodes":
            return attr

        def score_nodes(question, paths, gold=None):  # confidence verifiers: counted like score()
            self.calls += 1
            return attr(question, paths, gold=gold)
        return score_nodes


def problem_seed(run_seed: int, problem: Problem) -> int:
    return zlib.crc32(f"{run_seed}:{problem.dataset}:{problem.key}".encode())


class Heartbeat:
    """Writes the run's `heartbeat_at` every `every_s` seconds from a daemon thread while the run
    works, so a machine that shares the database (and cannot see this process) knows it is alive
    even during a long model call. A failed beat is logged, never fatal: the run matters more."""

    def __init__(self, store: Store, run_id: str, every_s: float | None = None):
        self.store, self.run_id, self.every_s = store, run_id, every_s or m.HEARTBEAT_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                liveness.heartbeat(self.store, self.run_id)
            except Exception as exc:  # a locked or unreachable database: try again next beat
                logging.getLogger(__name__).warning("heartbeat of run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


ProblemCallback = Callable[[m.Result, m.Problem], None]


def execute(store: Store, run_id: str, lm, verifier, on_problem: ProblemCallback | None = None,
            concurrency: int | None = None) -> m.Run:
    """Solve the run's unfinished problems, `concurrency` of them in flight (default: the backend's,
    reasoning.backends.default_concurrency) with their model and verifier calls merged
    (reasoning/scheduler.py; the results do not depend on it). Each problem is
    committed when it finishes. Ctrl-C (or SIGTERM turned into KeyboardInterrupt) leaves the run
    `interrupted`; any other error leaves it `failed` with the error text. Both resume."""
    run = runs.get_run(store, run_id)
    if run is None:
        raise UserError(f"no run {run_id}")
    request = request_of(run)
    search = get_strategy(request.strategy)
    runs.discard_partial(store, run_id)
    liveness.claim(store, run_id)
    check_concurrency(concurrency)
    scheduler = Scheduler(lm, verifier, concurrency or default_concurrency(lm))
    jobs = ((row, partial(solve_one, store, run_id, position, row, request, search))
            for position, row in runs.pending_problems(store, run_id))
    try:
        with Heartbeat(store, run_id):
            for done in scheduler.run(jobs):
                if on_problem:
                    on_problem(done.result, done.key)
    except KeyboardInterrupt:
        liveness.release(store, run_id, m.INTERRUPTED)
        raise
    except BaseException as exc:
        liveness.release(store, run_id, m.FAILED,
                         error="".join(traceback.format_exception_only(type(exc), exc)).strip())
        raise
    liveness.release(store, run_id, m.DONE)
    return runs.get_run(store, run_id)


def solve_one(store: Store, run_id: str, position: int, row: m.Problem, request: RunRequest, search,
              lm, verifier) -> m.Result:
    """One problem, start to end; with many in flight, `lm` and `verifier` are the scheduler's
    stand-ins and every call suspends this problem until the merged call answers it."""
    problem = Problem(key=row.key, question=row.question, answer=row.answer, dataset=row.dataset,
                      difficulty=row.difficulty, meta=row.meta)
    metered_lm = MeteredLM(lm, problem_seed(request.seed, problem), request.config.system_prompt)
    metered_verifier = MeteredVerifier(verifier) if verifier is not None else None
    writer = NodeWriter(store, run_id, row.id)
    tree = Tree(problem.question, emit=writer, delimiter=request.config.delimiter)
    clock = getattr(lm, "clock", None)  # the scheduler's per-problem share of wall time, when there is one
    started = time.perf_counter()
    outcome = search(problem, metered_lm, metered_verifier, request.config, tree)
    wall = clock() if clock else time.perf_counter() - started
    correct = None
    if problem.answer is not None:
        correct = outcome.answer is not None and is_equiv(outcome.answer, problem.answer)
    meta = dict(outcome.meta)
    chosen = tree.nodes[outcome.node].meta if outcome.node is not None else {}
    if "think_tokens" in chosen:  # a thinking model's chosen path: its thinking, for the o1 plot
        meta.setdefault("think_tokens", chosen["think_tokens"])
    if metered_lm.prompt_tokens is not None:  # the prefill this problem asked for: a budget axis of curves
        meta["prompt_tokens"] = metered_lm.prompt_tokens
    if metered_lm.train_tokens:  # test-time training: tokens trained on (training FLOPs = 6 N D)
        meta["train_tokens"] = metered_lm.train_tokens
    result = m.Result(run_id=run_id, problem_id=row.id, position=position, node_seq=outcome.node,
                      answer=outcome.answer, correct=correct, tokens=metered_lm.tokens,
                      model_calls=metered_lm.calls,
                      verifier_calls=metered_verifier.calls if metered_verifier else 0,
                      wall_seconds=wall, votes=outcome.votes, meta=meta)
    writer.finish(result)  # the problem's last nodes, its result and the run's totals: one transaction
    return result

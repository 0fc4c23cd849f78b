"""Runs a strategy over problems and streams every node to the store; resumes what was cut off.

A problem counts as done only when its Result is committed, in the same transaction as its last
nodes; resuming deletes the partial nodes of unfinished problems and redoes them with the same
seeds, so an interrupted-then-resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import delete, insert, update
from sqlmodel import select

import reasoning
from reasoning.answers import is_equiv
from reasoning.backends import DEFAULT_MODEL, check_backend
from reasoning.config import SearchConfig
from reasoning.errors import UserError
from reasoning.strategies import check_config, check_strategy, default_verifier, get_strategy, lookup
from reasoning.tree import Tree
from reasoning.types import Node, Problem
from reasoning.verifiers import check_verifier_spec
from store import models as m
from store.db import session_scope
from store.queries import HOST


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
    seed: int = 0
    name: str = ""
    config: SearchConfig = field(default_factory=SearchConfig)

    def validate(self) -> "RunRequest":
        self.verifier = default_verifier(self.strategy, self.model, self.verifier)
        check_strategy(self.strategy, self.verifier)
        check_verifier_spec(self.verifier)
        check_config(self.strategy, self.config)
        check_backend(self.backend, self.backend_options)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1 (got {self.limit})")
        return self


def check_gold(request: RunRequest, problems: list[Problem]) -> None:
    """The oracle verifier scores by the gold answer: refuse it on a question that has none (it would
    score every path 0.5 and select at random while looking like an upper bound)."""
    missing = next((p for p in problems if p.answer is None), None)
    if request.verifier == "oracle" and missing is not None:
        raise UserError(f"the oracle verifier needs gold answers, and problem {missing.key!r} of "
                        f"{request.dataset} has none: choose another verifier")


def create_run(url: str, request: RunRequest, problems: list[Problem], lm, verifier,
               run_id: str | None = None) -> str:
    """Record the run and its problem list; nothing model-related runs here."""
    if not problems:
        raise UserError(f"dataset {request.dataset} has no problems")
    check_gold(request, problems)
    with session_scope(url) as session:
        run = m.Run(
            name=request.name or default_name(request),
            strategy=request.strategy,
            params={**request.config.to_dict(), "dataset": request.dataset, "limit": request.limit,
                    "model": request.model, "verifier": request.verifier, "backend": request.backend,
                    "backend_options": request.backend_options},
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
        )
        if run_id:
            run.id = run_id
        session.add(run)
        # Problems are shared between runs: look the known ones up in one query, add the rest.
        datasets = {problem.dataset for problem in problems}
        known = {(row.dataset, row.key): row
                 for row in session.exec(select(m.Problem).where(m.Problem.dataset.in_(datasets))).all()}
        for problem in problems:
            if (problem.dataset, problem.key) not in known:
                row = m.Problem(dataset=problem.dataset, key=problem.key, question=problem.question,
                                answer=problem.answer, difficulty=problem.difficulty, meta=problem.meta)
                session.add(row)
                known[(problem.dataset, problem.key)] = row
        session.flush()
        session.add_all(m.RunProblem(run_id=run.id, position=position,
                                     problem_id=known[(problem.dataset, problem.key)].id)
                        for position, problem in enumerate(problems))
        return run.id


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
                      seed=run.seed, name=run.name, config=SearchConfig.from_dict(p),
                      backend=p.get("backend", "transformers"), backend_options=p.get("backend_options") or {})


class MeteredLM:
    """Counts calls and generated tokens per problem, and gives every call a seed derived from the
    problem's seed and the call's index, so the same problem always sees the same random draws."""

    def __init__(self, lm, problem_seed: int):
        self.lm, self.problem_seed = lm, problem_seed
        self.calls = self.tokens = 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        if seed is None:
            seed = (self.problem_seed + 7919 * self.calls) % 2**31
        self.calls += 1
        out = self.lm.complete(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                               stop=stop, seed=seed, top_p=top_p)
        self.tokens += sum(c.n_tokens for row in out for c in row)
        return out


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


_NODE_FIELDS = ("seq", "depth", "text", "tokens", "logprob", "score", "path_score", "status",
                "finish_reason", "answer", "correct", "iteration", "meta")


class NodeWriter:
    """Receives every node event of one problem; writes them in small batches (so the app sees the
    tree grow) and finally together with the problem's Result in one transaction."""

    def __init__(self, url: str, run_id: str, problem_id: int, every_s: float = 0.5):
        self.url, self.run_id, self.problem_id, self.every_s = url, run_id, problem_id, every_s
        self.pending: dict[int, Node] = {}
        self.ids: dict[int, int] = {}
        self.last_flush = time.monotonic()

    def __call__(self, node: Node) -> None:
        self.pending[node.seq] = node
        if time.monotonic() - self.last_flush > self.every_s:
            with session_scope(self.url) as session:
                self.flush(session)

    def flush(self, session) -> None:
        self.last_flush = time.monotonic()
        if not self.pending:
            return
        rows = [{**{f: getattr(n, f) for f in _NODE_FIELDS}, "parent_seq": n.parent} for n in self.pending.values()]
        new = [r for r in rows if r["seq"] not in self.ids]
        old = [{**r, "id": self.ids[r["seq"]]} for r in rows if r["seq"] in self.ids]
        if new:
            stmt = insert(m.Node).returning(m.Node.id, m.Node.seq, sort_by_parameter_order=True)
            result = session.execute(stmt, [{**r, "run_id": self.run_id, "problem_id": self.problem_id} for r in new])
            self.ids.update({seq: id_ for id_, seq in result.all()})
        if old:
            session.execute(update(m.Node), old)
        self.pending.clear()


def discard_partial(url: str, run_id: str) -> None:
    """Delete nodes of problems that have no committed Result (a crash mid-problem)."""
    with session_scope(url) as session:
        done = select(m.Result.problem_id).where(m.Result.run_id == run_id)
        session.execute(delete(m.Node).where(m.Node.run_id == run_id, m.Node.problem_id.not_in(done)))


def pending_problems(url: str, run_id: str) -> list[tuple[int, m.Problem]]:
    with session_scope(url) as session:
        done = select(m.Result.problem_id).where(m.Result.run_id == run_id)
        rows = session.exec(
            select(m.RunProblem.position, m.Problem)
            .join(m.Problem, m.Problem.id == m.RunProblem.problem_id)
            .where(m.RunProblem.run_id == run_id, m.RunProblem.problem_id.not_in(done))
            .order_by(m.RunProblem.position)
        ).all()
        return [(pos, prob) for pos, prob in rows]


def _set_status(url: str, run_id: str, **values) -> None:
    with session_scope(url) as session:
        session.execute(update(m.Run).where(m.Run.id == run_id).values(**values))


class Heartbeat:
    """Writes the run's `heartbeat_at` every `every_s` seconds from a daemon thread while the run
    works, so a machine that shares the database (and cannot see this process) knows it is alive
    even during a long model call. A failed beat is logged, never fatal: the run matters more."""

    def __init__(self, url: str, run_id: str, every_s: float | None = None):
        self.url, self.run_id, self.every_s = url, run_id, every_s or m.HEARTBEAT_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                _set_status(self.url, self.run_id, heartbeat_at=m.utcnow())
            except Exception as exc:  # a locked or unreachable database: try again next beat
                logging.getLogger(__name__).warning("heartbeat of run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


ProblemCallback = Callable[[m.Result, m.Problem], None]


def execute(url: str, run_id: str, lm, verifier, on_problem: ProblemCallback | None = None) -> m.Run:
    """Solve the run's unfinished problems. Ctrl-C (or SIGTERM turned into KeyboardInterrupt) leaves
    the run `interrupted`; any other error leaves it `failed` with the error text. Both resume."""
    with session_scope(url) as session:
        run = session.get(m.Run, run_id)
        if run is None:
            raise UserError(f"no run {run_id}")
        request = request_of(run)
    search = get_strategy(request.strategy)
    discard_partial(url, run_id)
    _set_status(url, run_id, status=m.RUNNING, worker_pid=os.getpid(), worker_host=HOST, heartbeat_at=m.utcnow(),
                error=None, finished_at=None)
    try:
        with Heartbeat(url, run_id):
            for position, row in pending_problems(url, run_id):
                result = solve_one(url, run_id, position, row, request, lm, verifier, search)
                if on_problem:
                    on_problem(result, row)
    except KeyboardInterrupt:
        _set_status(url, run_id, status=m.INTERRUPTED, worker_pid=None)
        raise
    except BaseException as exc:
        _set_status(url, run_id, status=m.FAILED, worker_pid=None,
                    error="".join(traceback.format_exception_only(type(exc), exc)).strip())
        raise
    _set_status(url, run_id, status=m.DONE, worker_pid=None, finished_at=m.utcnow())
    with session_scope(url) as session:
        return session.get(m.Run, run_id)


def solve_one(url: str, run_id: str, position: int, row: m.Problem, request: RunRequest, lm, verifier,
              search) -> m.Result:
    problem = Problem(key=row.key, question=row.question, answer=row.answer, dataset=row.dataset,
                      difficulty=row.difficulty, meta=row.meta)
    metered_lm = MeteredLM(lm, problem_seed(request.seed, problem))
    metered_verifier = MeteredVerifier(verifier) if verifier is not None else None
    writer = NodeWriter(url, run_id, row.id)
    tree = Tree(problem.question, emit=writer, delimiter=request.config.delimiter)
    started = time.perf_counter()
    outcome = search(problem, metered_lm, metered_verifier, request.config, tree)
    wall = time.perf_counter() - started
    correct = None
    if problem.answer is not None:
        correct = outcome.answer is not None and is_equiv(outcome.answer, problem.answer)
    result = m.Result(run_id=run_id, problem_id=row.id, position=position, node_seq=outcome.node,
                      answer=outcome.answer, correct=correct, tokens=metered_lm.tokens,
                      model_calls=metered_lm.calls,
                      verifier_calls=metered_verifier.calls if metered_verifier else 0,
                      wall_seconds=wall, votes=outcome.votes, meta=outcome.meta)
    with session_scope(url) as session:
        writer.flush(session)
        session.add(result)
        session.execute(update(m.Run).where(m.Run.id == run_id).values(
            tokens=m.Run.tokens + result.tokens, model_calls=m.Run.model_calls + result.model_calls,
            verifier_calls=m.Run.verifier_calls + result.verifier_calls,
            wall_seconds=m.Run.wall_seconds + wall))
    return result

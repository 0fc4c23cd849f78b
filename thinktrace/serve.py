"""`python -m reasoning serve`: an OpenAI-compatible server in front of the engine, every request a
stored problem with its whole tree.

Endpoints: `POST /v1/chat/completions` and `POST /v1/completions` (plain JSON, or server-sent events
with `"stream": true`), `GET /v1/models`, `GET /health`. The answer is the chosen path's text; the
response adds `usage` (every token the strategy spent: `completion_tokens` counts all paths, pruned
ones too; `prompt_tokens` is the prompt once) and `thinktrace: {run_id, problem_id, position, node,
answer, tree_url}`.

What to run comes from, in this order (later wins): the server's defaults (`serve --strategy --n
--verifier ...`), the model name `STRATEGY[@N][/MODEL]` (`best_of_n@8/lab`, `beam_search/lab`,
`self_consistency@16`: for clients that cannot send extra fields) and an extra body object with the
CLI's knob names, `{"thinktrace": {"strategy": "best_of_n", "n": 8, "verifier": "prm:lab",
"gold": "42"}}` (`gold`: the known answer, which grades the request; without it a request is
ungraded). The OpenAI fields `max_tokens` / `max_completion_tokens`, `temperature` and `top_p` set
the knobs of the same meaning. Everything is checked as `run` checks it (SearchConfig,
strategies.check_config) plus the limits in LIMITS and MAX_BODY_BYTES; a bad request is HTTP 400
with one message in OpenAI's error shape and leaves the store unchanged.

Where requests are stored: one run per (UTC day, strategy, verifier, knobs) on the served model,
dataset "serve", named like "best_of_n n=8 prm:lab on serve 2025-06-01"; each request is one
problem of it (key = the response id, question = the chat's last user message or the prompt). A
server started again the same day appends to the same runs. The runs stay `running` while the server
serves them (heartbeat), so the Run page and the Library show requests arriving live.

Concurrency: one worker thread runs one reasoning.scheduler.Scheduler loop for every request, so
concurrent requests share merged (batched) model and verifier calls exactly as `run --concurrency
K` does; requests wait in a queue of bounded size and get 429 when it is full. A request is stored
when the worker takes it, before its search starts, and its tree commits when it ends whether or not
the client is still there (a client that went away is marked in the result's meta: `client_gone`).
On shutdown (Ctrl-C, SIGTERM) the server stops taking requests, finishes those it took, and marks
each run done, or interrupted when a problem was left unfinished (`python -m reasoning resume` can
finish it).

Auth: bound to a loopback address by default; bound elsewhere it needs $THINKTRACE_API_KEY and
refuses to start without it. When the variable is set, every /v1 request must carry
`Authorization: Bearer KEY` (401 otherwise).
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import Request  # at module level: FastAPI reads the handlers' annotations by name

from reasoning.config import SearchConfig, knobs
from reasoning.errors import UserError
from reasoning.strategies import lookup, names as strategy_names
from reasoning.types import Problem

log = logging.getLogger(__name__)

DATASET = "serve"
API_KEY_ENV = "THINKTRACE_API_KEY"
MAX_BODY_BYTES = 1_000_000
# The most a request may ask for (knobs not named here are bounded by their own declarations).
LIMITS = {"n": 64, "max_new_tokens": 4096, "beam_width": 64, "max_steps": 64, "max_step_tokens": 1024,
          "lookahead": 16, "think_tokens": 8192, "max_think_tokens": 8192, "expansions": 256, "width": 64,
          "parallel": 64, "batch": 64, "warmup": 64}
KEEPALIVE_S = 10.0  # a streaming response sends an SSE comment this often while the search runs


class ApiError(Exception):
    """An HTTP error in OpenAI's shape: {"error": {"message", "type", "code"}}."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


# ---------------------------------------------------------------------------------------------
# Who may bind where


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Off a loopback address the server is reachable by others: it needs a key (UserError without)."""
    if not is_loopback(host) and not api_key:
        raise UserError(f"serving on {host} makes the server reachable from other machines: set "
                        f"${API_KEY_ENV} (clients then send it as a Bearer token) or bind 127.0.0.1")


def check_port(host: str, port: int) -> None:
    """The address is free (checked before the model loads; uvicorn would only log and exit 1)."""
    import socket

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def authorized(header: str | None, api_key: str | None) -> bool:
    """No key configured: every request. Else `Authorization: Bearer KEY`, compared in constant time."""
    if not api_key:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


# ---------------------------------------------------------------------------------------------
# A request → what to run


@dataclass
class Defaults:
    """What `serve` was started with: the served model and the run settings a request may override."""

    model: str
    strategy: str = "cot"
    verifier: str | None = None
    knobs: dict = field(default_factory=dict)
    backend: str = "transformers"
    backend_options: dict = field(default_factory=dict)


def parse_model_name(name: str, served: str) -> dict:
    """`STRATEGY[@N][/MODEL]`, or just the served model's name. The model part, when given, must be
    the served model. Returns the settings it names ({} for the plain model name)."""
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "model: give the served model's name or STRATEGY[@N][/MODEL], e.g. best_of_n@8/" + served)
    name = name.strip()
    if name == served or name == "thinktrace":
        return {}
    head, slash, model = name.partition("/")
    if slash and model != served:
        # An HF id (org/name) that is not ours: say what this server serves.
        raise ApiError(404, f"model {name!r} is not served here: use {served!r} or STRATEGY[@N]/{served}",
                       code="model_not_found")
    strategy, at, n = head.partition("@")
    if strategy not in strategy_names():
        raise ApiError(404 if not slash and not at else 400,
                       f"model {name!r}: unknown strategy {strategy!r} (model names are {served} or "
                       f"STRATEGY[@N]/{served}; strategies: {', '.join(strategy_names())})", code="model_not_found")
    out: dict = {"strategy": strategy}
    if at:
        if not n.isdigit() or len(n) > 9:
            raise ApiError(400, f"model {name!r}: N after @ must be a whole number, e.g. {strategy}@8/{served}")
        out["n"] = int(n)
    return out


def _typed(knob, value):
    """A knob's value from JSON, type-checked as the CLI's parsers do (no bool for a number)."""
    want = knob.type
    if want is bool:
        ok = isinstance(value, bool)
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, want)
    if not ok:
        raise ApiError(400, f"thinktrace.{knob.name} must be {want.__name__} (got {json.dumps(value)[:40]})")
    return value


@dataclass
class Ask:
    """One checked request: what to run (a RunRequest) and on what."""

    request: Any  # thinktrace.runner.RunRequest
    question: str
    gold: str | None
    endpoint: str  # "chat.completion" | "text_completion"
    stream: bool
    include_usage: bool
    model_label: str  # echoed as the response's `model`


def settings_of(body: dict, defaults: Defaults) -> tuple[str, str | None, dict, str | None]:
    """(strategy, verifier, knobs, gold) of a request: the server's defaults, then the model name, then
    the OpenAI sampling fields, then the `thinktrace` object."""
    table = knobs()
    named = parse_model_name(body.get("model"), defaults.model)
    extra = body.get("thinktrace") or {}
    if not isinstance(extra, dict):
        raise ApiError(400, "thinktrace must be an object, e.g. {\"strategy\": \"best_of_n\", \"n\": 8}")
    strategy = extra.get("strategy", named.get("strategy", defaults.strategy))
    if not isinstance(strategy, str):
        raise ApiError(400, "thinktrace.strategy must be a string")
    lookup(strategy)  # UserError: unknown strategy, with the list
    verifier = defaults.verifier
    values = {k: v for k, v in defaults.knobs.items() if k in table}
    if "n" in named:
        values["n"] = named["n"]
    for field_name, knob_name in (("max_tokens", "max_new_tokens"), ("max_completion_tokens", "max_new_tokens"),
                                  ("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(field_name) is not None:
            values[knob_name] = _typed(table[knob_name], body[field_name])
    gold = None
    for key, value in extra.items():
        if key == "strategy":
            continue
        if key == "verifier":
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "thinktrace.verifier must be a string (or null for none)")
            verifier = value or "none"
        elif key == "gold":
            if value is not None and not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ApiError(400, "thinktrace.gold must be the answer as a string or a number")
            gold = None if value is None else str(value)
        elif key.replace("-", "_") in table and table[key.replace("-", "_")].cli:
            knob = table[key.replace("-", "_")]
            values[knob.name] = _typed(knob, value)
        else:
            raise ApiError(400, f"unknown thinktrace field {key!r}: use strategy, verifier, gold or a knob "
                                f"({', '.join(k for k, v in table.items() if v.cli)})")
    for name, most in LIMITS.items():
        if name in values and isinstance(values[name], (int, float)) and values[name] > most:
            raise ApiError(400, f"{name} = {values[name]} is over this server's limit of {most}")
    return strategy, verifier, values, gold


def _text_of(content) -> str | None:
    """A chat message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts) and parts:
            return "\n".join(parts)
    return None


def question_of(body: dict, endpoint: str) -> str:
    if endpoint == "chat.completion":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages: a non-empty array of {role, content} is required")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise ApiError(400, "messages: no message with role \"user\" (its last one is the question)")
        text = _text_of(users[-1].get("content"))
        if text is None:
            raise ApiError(400, "messages: the last user message's content must be text")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt: one string is required (a batch of prompts is many requests here)")
        text = prompt
    if not text.strip():
        raise ApiError(400, "the question is empty")
    return text


def parse(raw: bytes, endpoint: str, defaults: Defaults) -> Ask:
    """A request's body → a checked Ask, or ApiError / UserError (both 400: nothing was stored)."""
    from reasoning.strict_json import loads
    from reasoning.verifiers import check_verifier_spec
    from store.bundle_schema import check_problem
    from thinktrace.runner import RunRequest, check_gold

    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
    body = loads(raw, "request body")
    if not isinstance(body, dict):
        raise ApiError(400, "request body: a JSON object is required")
    if body.get("n") not in (None, 1):
        raise ApiError(400, "n: one choice per request here; the strategy's samples are thinktrace.n "
                            "(or STRATEGY@N in the model name)")
    question = question_of(body, endpoint)
    strategy, verifier, values, gold = settings_of(body, defaults)
    try:
        config = SearchConfig(**values)
    except TypeError as exc:
        raise ApiError(400, str(exc)) from None
    check_verifier_spec(verifier)
    request = RunRequest(strategy=strategy, dataset=DATASET, model=defaults.model, verifier=verifier,
                         backend=defaults.backend, backend_options=defaults.backend_options, config=config)
    request.validate()  # knobs in range, the strategy's own rules, its verifier
    if request.verifier in ("", "none"):
        request.verifier = None
    problem = Problem(key="check", question=question, answer=gold, dataset=DATASET)
    check_problem(problem)  # what the store can hold (sizes)
    check_gold(request, [problem])
    stream = body.get("stream") is True
    options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
    label = body.get("model") if isinstance(body.get("model"), str) else defaults.model
    return Ask(request=request, question=question, gold=gold, endpoint=endpoint, stream=stream,
               include_usage=bool(options.get("include_usage")), model_label=label)


def run_key(request, day: str) -> tuple:
    """Which run a request lands in: the day and everything that makes runs differ."""
    return (day, request.model, request.strategy, request.verifier or None,
            json.dumps(request.config.to_dict(), sort_keys=True, default=str))


# ---------------------------------------------------------------------------------------------
# The worker: one scheduler loop for every request


class Busy(Exception):
    """The queue is full (429)."""


@dataclass
class Answer:
    """What a finished request gets back."""

    run_id: str
    problem_id: int
    position: int
    node: int | None
    answer: str | None
    text: str
    finish_reason: str
    completion_tokens: int
    prompt_tokens: int
    correct: bool | None


class Job:
    """One accepted request, from the HTTP handler to the worker and back."""

    def __init__(self, ask: Ask, loop: asyncio.AbstractEventLoop):
        self.ask, self.loop = ask, loop
        self.id = ("chatcmpl-" if ask.endpoint == "chat.completion" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.future: asyncio.Future = loop.create_future()
        self.client_gone = False

    def settle(self, answer: Answer | None = None, error: BaseException | None = None) -> None:
        def set_it():
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(answer)
        self.loop.call_soon_threadsafe(set_it)


class _Intake:
    """The scheduler's job source while the server runs: each time the scheduler has a free place it
    asks for the next job; this takes what has queued since (storing it first) and says "nothing now"
    (StopIteration, asked again next round) when there is none. Taking jobs between rounds is what
    lets a new request join the next merged call of the requests already in flight."""

    def __init__(self, worker: "Worker"):
        self.worker = worker
        self.ready: list = []

    def __iter__(self):
        return self

    def __next__(self):
        if not self.ready:
            self.ready = self.worker._admit(self.worker._drain())
        if not self.ready:
            raise StopIteration
        return self.ready.pop(0)


class Worker:
    """Runs every request through one Scheduler in one thread. `submit` is called from the HTTP side
    (any thread); everything else of the store and the model happens in the worker thread (the
    heartbeats aside)."""

    def __init__(self, store, lm, verifiers: dict, shared_verifier: str | None, concurrency: int,
                 queue_size: int, seed: int = 0):
        from reasoning.scheduler import Scheduler

        self.store, self.lm, self.verifiers, self.seed = store, lm, verifiers, seed
        self.shared_verifier = shared_verifier
        self.concurrency, self.capacity = concurrency, concurrency + queue_size
        self.scheduler = Scheduler(lm, verifiers.get(shared_verifier), concurrency)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._open = 0  # accepted, not yet answered
        self._accepting = True
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.runs: dict[tuple, str] = {}  # run_key -> run id
        self._thread = threading.Thread(target=self._loop, name="thinktrace-serve", daemon=True)
        self._beat = threading.Thread(target=self._heartbeat, name="thinktrace-serve-heartbeat", daemon=True)
        self.served = 0
        self._in_flight: set[Job] = set()

    # --- the HTTP side ---------------------------------------------------------------------------

    def start(self) -> "Worker":
        self._thread.start()
        self._beat.start()
        return self

    @property
    def open(self) -> int:
        return self._open

    def submit(self, job: Job) -> None:
        with self._lock:
            if not self._accepting:
                raise ApiError(503, "the server is shutting down", type="server_error", code="shutting_down")
            if self._open >= self.capacity:
                raise Busy()
            self._open += 1
            self._idle.clear()
        self._queue.put(job)

    def verifier_for(self, spec: str | None):
        """The loaded verifier of a spec. PRMs are loaded when the server starts (a request cannot make
        this machine download a model); the cheap ones (self_eval, confidence, oracle) on first use."""
        from reasoning.verifiers import load_verifier

        if spec in (None, "", "none"):
            return None
        with self._lock:
            if spec in self.verifiers:
                return self.verifiers[spec]
        if spec.startswith("prm:"):
            raise ApiError(400, f"verifier {spec} is not loaded on this server (loaded: "
                                f"{', '.join(s for s in self.verifiers if s) or 'none'}): start serve with --verifier {spec}")
        verifier = load_verifier(spec, self.lm)
        with self._lock:
            return self.verifiers.setdefault(spec, verifier)

    def stop(self, timeout: float | None = None) -> None:
        """Take no new request, finish the ones taken, then mark every run: done when all its problems
        have results, interrupted otherwise."""
        with self._lock:
            self._accepting = False
        self._idle.wait(timeout)
        self._stop.set()
        self._thread.join(timeout=5)
        self._release_all()

    # --- the worker thread ----------------------------------------------------------------------

    def _drain(self) -> list[Job]:
        jobs = []
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                return jobs

    def _loop(self) -> None:
        intake = _Intake(self)
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._queue.put(first)  # behind any that came since: _admit takes them in order
            try:
                for done in self.scheduler.run(intake):
                    self._finished(*done.result)
            except BaseException as exc:  # a merged call failed: every request in flight fails with it
                log.exception("serve: a merged model or verifier call failed")
                for flight_job in list(self._in_flight):
                    self._settle(flight_job, error=ApiError(500, f"the model call failed: {exc}",
                                                            type="server_error", code="model_error"))
                intake.ready.clear()
            if self._open == 0:
                self._idle.set()

    def _admit(self, jobs: list[Job]) -> list:
        """Store the new requests (their runs first, where new) and make their scheduler jobs."""
        from functools import partial

        from thinktrace.runner import solve_one

        if not jobs:
            return []
        day = datetime.now(timezone.utc).date().isoformat()
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            groups.setdefault(run_key(job.ask.request, day), []).append(job)
        out = []
        for key, members in groups.items():
            problems = [Problem(key=j.id, question=j.ask.question, answer=j.ask.gold, dataset=DATASET,
                                meta={"endpoint": j.ask.endpoint}) for j in members]
            try:
                verifier = self.verifier_for(members[0].ask.request.verifier)
                run_id, rows = self._store(key, members[0].ask.request, day, problems)
            except BaseException as exc:
                log.exception("serve: storing %d request(s) failed", len(members))
                for job in members:
                    self._settle(job, error=exc if isinstance(exc, (ApiError, UserError)) else
                                 ApiError(500, f"storing the request failed: {exc}", type="server_error"))
                continue
            for job, (position, row) in zip(members, rows):
                request = job.ask.request
                search = _capturing(job, lookup(request.strategy).search)
                run = partial(solve_one, self.store, run_id, position, row, request, search)
                self._in_flight.add(job)
                out.append((job, partial(self._job, job, run, run_id, row.id, position, verifier,
                                         request.verifier == self.shared_verifier)))
        return out

    def _job(self, job: Job, run, run_id: str, problem_id: int, position: int, verifier, shared: bool,
             lm, shared_standin):
        """One request inside the scheduler: its own errors are its own (the others go on)."""
        try:
            result = run(lm, shared_standin if shared else verifier)
        except Exception as exc:
            log.exception("serve: request %s failed", job.id)
            return job, None, run_id, problem_id, position, exc
        return job, result, run_id, problem_id, position, None

    def _finished(self, job: Job, result, run_id: str, problem_id: int, position: int, error) -> None:
        if error is not None:
            self._settle(job, error=error if isinstance(error, (ApiError, UserError)) else
                         ApiError(500, f"the search failed: {error}", type="server_error"))
            return
        tree, outcome = job.tree, job.outcome
        node = tree.nodes[outcome.node] if outcome.node is not None else None
        text = tree.delimiter.join(tree.steps(node)) if node is not None else ""
        finish = "length" if node is not None and node.finish_reason == "length" else "stop"
        self.served += 1
        self._settle(job, Answer(run_id=run_id, problem_id=problem_id, position=position, node=outcome.node,
                                 answer=result.answer, text=text, finish_reason=finish,
                                 completion_tokens=result.tokens, prompt_tokens=self._prompt_tokens(job),
                                 correct=result.correct))

    def _settle(self, job: Job, answer: Answer | None = None, error: BaseException | None = None) -> None:
        self._in_flight.discard(job)
        job.settle(answer, error)
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._queue.empty():
                self._idle.set()

    def _prompt_tokens(self, job: Job) -> int:
        tokenizer = getattr(self.lm, "tokenizer", None)
        if tokenizer is None:
            return 0
        try:
            return len(tokenizer(self.lm.prompt(job.ask.question), add_special_tokens=False).input_ids)
        except Exception:  # a tokenizer that cannot say: usage without the prompt
            return 0

    def _store(self, key: tuple, request, day: str, problems: list[Problem]) -> tuple[str, list]:
        """Store these requests in the run of their key: this process's, else today's from an earlier
        start (claimed again), else a new one. Returns the run id and each (position, problem row)."""
        from store import liveness
        from store import models as m
        from store import runs as store_runs
        from thinktrace.runner import create_run, default_name, request_of

        run_id = self.runs.get(key)
        if run_id is None:
            for run in store_runs.runs_of_dataset(self.store, DATASET):
                if m.as_utc(run.created_at).date().isoformat() != day or liveness.effective_status(run) == m.RUNNING:
                    continue  # another day's, or another server's
                try:
                    same = run_key(request_of(run), day) == key
                except Exception:  # a run edited by hand: not ours
                    continue
                if same and not store_runs.pending_problems(self.store, run.id):  # else left to `resume`
                    store_runs.discard_partial(self.store, run.id)
                    liveness.claim(self.store, run.id)
                    run_id = self.runs[key] = run.id
                    break
        if run_id is not None:
            return run_id, store_runs.add_problems(self.store, run_id, problems)
        request.name = f"{default_name(request)} {day}"
        verifier = self.verifiers.get(request.verifier) if request.verifier else None
        run_id = create_run(self.store, request, problems, self.lm, verifier)  # the run and its first problems
        liveness.claim(self.store, run_id)
        self.runs[key] = run_id
        return run_id, store_runs.pending_problems(self.store, run_id)

    def _heartbeat(self) -> None:
        from store import liveness
        from store import models as m

        while not self._stop.wait(m.HEARTBEAT_S):
            for run_id in list(self.runs.values()):
                try:
                    liveness.heartbeat(self.store, run_id)
                except Exception as exc:
                    log.warning("heartbeat of run %s failed: %s", run_id, exc)

    def _release_all(self) -> None:
        from store import liveness
        from store import models as m
        from store import runs as store_runs

        for run_id in list(self.runs.values()):
            try:
                left = store_runs.pending_problems(self.store, run_id)
                liveness.release(self.store, run_id, m.INTERRUPTED if left else m.DONE)
            except Exception as exc:
                log.warning("marking run %s failed: %s", run_id, exc)


def _capturing(job: Job, search):
    """The strategy's search, keeping the tree and outcome on the job (the response's text) and
    noting in the result's meta a client that went away before the search ended."""
    def search_and_keep(problem, lm, verifier, cfg, tree):
        job.tree = tree
        outcome = search(problem, lm, verifier, cfg, tree)
        job.outcome = outcome
        if job.client_gone:
            outcome.meta["client_gone"] = True
        return outcome
    return search_and_keep


# ---------------------------------------------------------------------------------------------
# The HTTP side


def tree_url(answer: Answer) -> str:
    """A link to the request's tree on the app's Tree page (problems count from 1 in links)."""
    node = f"&node={answer.node}" if answer.node is not None else ""
    return f"/tree?run={answer.run_id}&problem={answer.position + 1}{node}"


def _thinktrace(ask: Ask, answer: Answer) -> dict:
    return {"run_id": answer.run_id, "problem_id": answer.problem_id, "position": answer.position,
            "node": answer.node, "answer": answer.answer, "correct": answer.correct,
            "strategy": ask.request.strategy, "tree_url": tree_url(answer)}


def _usage(answer: Answer) -> dict:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def response_body(job: Job, answer: Answer) -> dict:
    ask = job.ask
    if ask.endpoint == "chat.completion":
        choice = {"index": 0, "message": {"role": "assistant", "content": answer.text},
                  "finish_reason": answer.finish_reason, "logprobs": None}
    else:
        choice = {"index": 0, "text": answer.text, "finish_reason": answer.finish_reason, "logprobs": None}
    return {"id": job.id, "object": ask.endpoint, "created": job.created, "model": ask.model_label,
            "choices": [choice], "usage": _usage(answer), "thinktrace": _thinktrace(ask, answer)}


def _chunks(text: str, size: int = 64) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


async def stream_events(job: Job):
    """Server-sent events as OpenAI sends them: a first chunk (the role), the text in chunks, a last
    chunk with the finish reason (and ThinkTrace's ids), usage when asked, then `data: [DONE]`. While
    the search runs, SSE comments keep the connection open. A client that leaves does not stop the
    search: its tree is stored all the same."""
    ask, chat = job.ask, job.ask.endpoint == "chat.completion"
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: dict | str, finish=None, **extra) -> dict:
        choice = {"index": 0, "finish_reason": finish, "logprobs": None}
        choice.update({"delta": delta} if chat else {"text": delta})
        return {"id": job.id, "object": kind, "created": job.created, "model": ask.model_label,
                "choices": [choice], **extra}

    try:
        if chat:
            yield _sse(chunk({"role": "assistant", "content": ""}))
        while True:
            try:
                answer = await asyncio.wait_for(asyncio.shield(job.future), KEEPALIVE_S)
                break
            except asyncio.TimeoutError:
                yield b": searching\n\n"
    except asyncio.CancelledError:
        job.client_gone = True
        raise
    except ApiError as exc:
        yield _sse(exc.body())
        yield _sse("[DONE]")
        return
    except UserError as exc:
        yield _sse(ApiError(400, str(exc)).body())
        yield _sse("[DONE]")
        return
    for piece in _chunks(answer.text):
        yield _sse(chunk({"content": piece} if chat else piece))
    yield _sse(chunk({} if chat else "", answer.finish_reason, thinktrace=_thinktrace(ask, answer)))
    if ask.include_usage:
        yield _sse({"id": job.id, "object": kind, "created": job.created, "model": ask.model_label,
                    "choices": [], "usage": _usage(answer)})
    yield _sse("[DONE]")


def create_app(worker: Worker, defaults: Defaults, api_key: str | None = None):
    """The FastAPI app over a started worker (its lifespan stops the worker on shutdown)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(worker.stop)

    app = FastAPI(title="ThinkTrace", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def error(exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return error(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(ApiError(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error(ApiError(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid')}"))

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if request.url.path.startswith("/v1") and not authorized(request.headers.get("authorization"), api_key):
            return error(ApiError(401, "missing or wrong API key: send Authorization: Bearer $THINKTRACE_API_KEY",
                                  type="authentication_error", code="invalid_api_key"))
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return error(ApiError(413, f"request body over {MAX_BODY_BYTES} bytes"))
        return await call_next(request)

    async def complete(request: Request, endpoint: str):
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            ask = parse(bytes(raw), endpoint, defaults)
            if ask.request.strategy == "compute_optimal":  # its plan comes from a stored policy
                from thinktrace.runner import prepare

                await asyncio.to_thread(prepare, worker.store, ask.request)
            if ask.request.verifier not in (None, "", "none"):
                worker.verifier_for(ask.request.verifier)  # a verifier this server cannot load: 400 now
        except UserError as exc:
            raise ApiError(400, str(exc)) from None
        job = Job(ask, asyncio.get_running_loop())
        try:
            worker.submit(job)
        except Busy:
            raise ApiError(429, f"the server is busy ({worker.capacity} requests in flight and queued): retry later",
                           type="rate_limit_error", code="queue_full") from None
        if ask.stream:
            return StreamingResponse(stream_events(job), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        try:
            answer = await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.client_gone = True
            raise
        except UserError as exc:
            raise ApiError(400, str(exc)) from None
        return JSONResponse(response_body(job, answer))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, "chat.completion")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, "text_completion")

    @app.get("/v1/models")
    async def models():
        created = int(time.time())
        ids = [defaults.model] + [f"{name}/{defaults.model}" for name in strategy_names()]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": created, "owned_by": "thinktrace"}
                                           for i in ids]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": defaults.model, "strategy": defaults.strategy,
                "open_requests": worker.open, "capacity": worker.capacity, "served": worker.served,
                "runs": sorted(worker.runs.values())}

    return app


def load_worker(store, defaults: Defaults, concurrency: int | None, queue_size: int,
                trust_remote_code: bool = False) -> Worker:
    """Load the model and the verifiers a request may use without loading anything: the server's
    --verifier, and the model's own (prm:lab for the lab models), which merge across requests."""
    from reasoning.backends import DEFAULT_VERIFIERS, default_concurrency, load_model
    from reasoning.verifiers import load_verifier

    lm = load_model(defaults.model, backend=defaults.backend, **defaults.backend_options)
    verifiers: dict = {}
    shared = defaults.verifier if defaults.verifier not in (None, "", "none") else DEFAULT_VERIFIERS.get(defaults.model)
    for spec in {shared, DEFAULT_VERIFIERS.get(defaults.model)} - {None}:
        verifiers[spec] = load_verifier(spec, lm, trust_remote_code=trust_remote_code)
    return Worker(store, lm, verifiers, shared, concurrency or default_concurrency(lm), queue_size).start()


def serve(app, host: str, port: int, log_level: str = "warning") -> None:
    """Run the app with uvicorn until Ctrl-C / SIGTERM; uvicorn waits for the requests in flight, then
    the app's lifespan finishes the worker and marks the runs."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                  timeout_graceful_shutdown=None)).run()

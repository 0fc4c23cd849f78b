"""Many problems in flight: K searches advance together and their model and verifier calls are merged
into shared batched calls.

A strategy stays a plain top-to-bottom function that calls `lm.complete(...)` and `verifier.score(...)`.
Each search runs in its own greenlet (a coroutine with its own stack; no threads, so no locks and
no races: one thing runs at a time, in a fixed order). The model and verifier it is given are
stand-ins whose calls do not run: they hand the call to the scheduler and suspend the search. Once
every search in flight is waiting, the scheduler runs all their calls as one merged call per kind
(`complete_many` on the backend, `score_many` on the verifier, where they exist) and resumes each
search with its own part of the answer. A search that finishes makes room for the next problem,
which starts at once and joins the next merged call.

Results do not depend on K: every call carries the seed of its own problem (the runner's MeteredLM
derives it from the problem and the call's index), and the backends draw each call's samples from
its own seed. What can differ is floating point: a row's logits in a batch of 64 padded rows are not
always bit-identical to the same row in a batch of 4 (kernels reduce in another order), which can
flip a near-tie between two tokens; `tests/test_scheduler.py` and `bench/concurrency.py` measure
identity on the lab model.

Wall time: a problem's `seconds` is the time its own code ran plus its share of every merged call it
took part in (the call's time split equally among the searches in it), so the seconds of all
problems add up to the elapsed time, whatever K.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from greenlet import GreenletExit, getcurrent, greenlet

from reasoning.types import GenerationRequest

# What a search is: given the stand-in model and verifier, do the work and return the result.
Job = Callable[[Any, Any], Any]


@dataclass
class Call:
    """One model or verifier call a search is waiting on."""

    target: str  # "complete" | "choice_probs" | "score" | "score_nodes"
    args: tuple
    kwargs: dict


@dataclass
class _Flight:
    """One search in flight."""

    index: int
    key: Any
    thread: greenlet
    call: Call | None = None
    answer: Any = None
    seconds: float = 0.0
    resumed: float = 0.0  # when it last started running


@dataclass
class Stats:
    """How the calls were merged: `merged` calls to the model or verifier carried `calls` calls."""

    merged: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Done:
    """What `Scheduler.run` yields per finished search."""

    __slots__ = ("key", "result", "seconds")

    def __init__(self, key, result, seconds: float):
        self.key, self.result, self.seconds = key, result, seconds


class _Waiting:
    """Stand-in for the model or the verifier inside one search: `methods` are suspended and merged,
    everything else (prompt, name, tokenizer, n_params, ...) is the real object's."""

    def __init__(self, real, methods: tuple[str, ...], flight: "_Flight"):
        self._real, self._methods, self._flight = real, methods, flight

    def clock(self) -> float:
        """Seconds this search has taken so far: its own running time and its shares of merged calls."""
        return self._flight.seconds + time.perf_counter() - self._flight.resumed

    def __getattr__(self, name):
        value = getattr(self._real, name)
        if name not in self._methods:
            return value

        def suspended(*args, **kwargs):
            return getcurrent().parent.switch(Call(name, args, kwargs))
        return suspended


class Scheduler:
    """Runs searches `concurrency` at a time over one model (and verifier), merging their calls."""

    def __init__(self, lm, verifier=None, concurrency: int = 1):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
        self.lm, self.verifier, self.concurrency = lm, verifier, concurrency
        self.stats = Stats()
        self._verifier_methods = tuple(m for m in ("score", "score_nodes") if hasattr(verifier, m))

    def run(self, jobs: Iterable[tuple[Any, Job]]) -> Iterator[Done]:
        """Yield each search's result as it finishes (not necessarily in the order given). An error
        in a search or in a merged call ends every search in flight and is raised here. `jobs` may be
        a live source: an iterator with nothing now (StopIteration) is asked again whenever a place is
        free, before each merged call, so jobs that arrive meanwhile join the searches in flight
        (thinktrace/serve.py feeds requests this way); the run ends when no search is left."""
        source = iter(jobs)
        flights: list[_Flight] = []
        index = 0
        try:
            while True:
                # Fill the free places, each new search running up to its first call.
                while len(flights) < self.concurrency:
                    item = next(source, None)
                    if item is None:
                        break
                    key, job = item
                    flight = _Flight(index, key, greenlet(parent=getcurrent()))
                    flight.thread.run = self._body(job, flight)
                    index += 1
                    flights.append(flight)
                    yield from self._advance(flight, flights)
                waiting = [f for f in flights if f.call is not None]
                if not waiting:
                    return
                self._answer(waiting)
                # Resume every search with its answer, in the order they started; those that finish
                # make room, and the loop above starts the next problems before the next merged call.
                for flight in list(waiting):
                    yield from self._advance(flight, flights)
        finally:
            for flight in flights:  # an error, Ctrl-C or a consumer that stopped early
                if not flight.thread.dead:
                    try:
                        flight.thread.throw(GreenletExit)
                    except GreenletExit:
                        pass

    def _body(self, job: Job, flight: _Flight):
        lm = _Waiting(self.lm, ("complete", "choice_probs"), flight)
        verifier = None if self.verifier is None else _Waiting(self.verifier, self._verifier_methods, flight)

        def body(_first_answer=None):  # the first switch into a search carries no answer
            return _Result(job(lm, verifier))
        return body

    def _advance(self, flight: _Flight, flights: list[_Flight]) -> Iterator[Done]:
        flight.resumed = time.perf_counter()
        answer, flight.answer, flight.call = flight.answer, None, None
        out = flight.thread.switch(answer)
        flight.seconds += time.perf_counter() - flight.resumed
        if isinstance(out, Call):
            flight.call = out
            return
        assert isinstance(out, _Result), "a search switched to the scheduler with something other than a call"
        flights.remove(flight)
        yield Done(flight.key, out.value, flight.seconds)

    def _answer(self, waiting: list[_Flight]) -> None:
        """Run the waiting calls, merged by kind; give each search its part and its share of the time."""
        groups: dict[str, list[_Flight]] = defaultdict(list)
        for flight in waiting:
            groups[flight.call.target].append(flight)
        for target, group in groups.items():
            started = time.perf_counter()
            answers = MERGERS[target](self, [f.call for f in group])
            share = (time.perf_counter() - started) / len(group)
            self.stats.calls[target] += len(group)
            for flight, answer in zip(group, answers):
                flight.answer = answer
                flight.seconds += share

    # --- merging, one function per kind of call ---------------------------------------------------

    def _complete(self, calls: list[Call]) -> list:
        requests = [GenerationRequest(*c.args, **c.kwargs) for c in calls]
        if hasattr(self.lm, "complete_many"):
            self.stats.merged["complete"] += 1
            return self.lm.complete_many(requests)
        self.stats.merged["complete"] += len(requests)
        return [self.lm.complete(**r.as_kwargs()) for r in requests]

    def _choice_probs(self, calls: list[Call]) -> list:
        """Calls with the same choices become one call over all their prompts (each prompt's
        probabilities depend on that prompt alone)."""
        out: list = [None] * len(calls)
        by_choices: dict[tuple, list[int]] = defaultdict(list)
        for i, call in enumerate(calls):
            prompts, choices = _args(call, ("prompts", "choices"))
            by_choices[tuple(choices)].append(i)
        for choices, members in by_choices.items():
            prompts = [p for i in members for p in _args(calls[i], ("prompts", "choices"))[0]]
            probs = self.lm.choice_probs(prompts, list(choices))
            self.stats.merged["choice_probs"] += 1
            at = 0
            for i in members:
                count = len(_args(calls[i], ("prompts", "choices"))[0])
                out[i], at = probs[at:at + count], at + count
        return out

    def _score(self, calls: list[Call]) -> list:
        items = [_args(c, ("question", "paths", "gold"), {"gold": None}) for c in calls]
        if hasattr(self.verifier, "score_many"):
            self.stats.merged["score"] += 1
            return self.verifier.score_many(items)
        self.stats.merged["score"] += len(items)
        return [self.verifier.score(q, paths, gold=gold) for q, paths, gold in items]

    def _score_nodes(self, calls: list[Call]) -> list:
        # Confidence verifiers read numbers stored on the nodes: nothing to batch.
        self.stats.merged["score_nodes"] += len(calls)
        return [self.verifier.score_nodes(*c.args, **c.kwargs) for c in calls]


MERGERS = {"complete": Scheduler._complete, "choice_probs": Scheduler._choice_probs,
           "score": Scheduler._score, "score_nodes": Scheduler._score_nodes}


class _Result:
    """A finished search's return value, told apart from a call."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _args(call: Call, names: tuple[str, ...], defaults: dict | None = None) -> tuple:
    """A call's arguments by name, however they were passed."""
    values = dict(defaults or {})
    values.update(zip(names, call.args))
    values.update(call.kwargs)
    return tuple(values[n] for n in names)

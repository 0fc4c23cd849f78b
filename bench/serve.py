"""`serve` under load: 64 concurrent requests (best_of_n, n=8) from the official `openai` client
against the lab model, against the same work as one CLI-style batched run (runner.execute with
--concurrency 64); and the overhead per request of cot (server vs the engine alone, one at a time).

    .venv/bin/python bench/serve.py                     # 64 requests, arith:4
    .venv/bin/python bench/serve.py --requests 16 --n 4 --cot 20

The server (thinktrace/serve.py: uvicorn, the app, its worker) runs in this process on a free port,
with the model and verifier this script loaded, so both sides run the same weights; the clients are
threads of this process too (they share its 2 cores with the server). Every request goes into a fresh
SQLite file and is checked to be stored with its tree. Requests draw other seeds than the CLI run
(a request's seed comes from its id), so the two do the same kind of work, not the same tokens:
throughput is compared in generated tokens/s, with problems/s beside it.

Targets (issue 18): throughput >= 70% of the batched run; cot overhead < 20 ms per request.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.backends import load_model  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402
from reasoning.verifiers import load_verifier  # noqa: E402
from store import Store  # noqa: E402
from store.runs import run_results, tree_nodes  # noqa: E402
from thinktrace import runner  # noqa: E402
from thinktrace import serve as srv  # noqa: E402


def engine_run(lm, verifier, strategy: str, cfg: SearchConfig, problems, concurrency: int, folder: str):
    """The CLI's way: one run over all problems. Returns (wall s, generated tokens, seconds from one
    problem's commit to the next's: with concurrency 1, each problem's time, its commit included)."""
    store = Store(f"sqlite:///{folder}/engine-{strategy}-{time.monotonic_ns()}.db")
    request = runner.RunRequest(strategy=strategy, dataset="arith:4", model="lab", config=cfg).validate()
    run_id = runner.create_run(store, request, problems, lm, verifier)
    marks = []
    started = time.perf_counter()
    run = runner.execute(store, run_id, lm, verifier, concurrency=concurrency,
                         on_problem=lambda result, problem: marks.append(time.perf_counter()))
    steps = [b - a for a, b in zip(marks, marks[1:])]  # the first problem's time includes the run's start
    return time.perf_counter() - started, run.tokens, steps


class Server:
    def __init__(self, lm, verifier, folder: str, concurrency: int):
        import uvicorn

        self.store = Store(f"sqlite:///{folder}/serve-{time.monotonic_ns()}.db")
        self.worker = srv.Worker(self.store, lm, {"prm:lab": verifier}, "prm:lab", concurrency, 256).start()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = srv.create_app(self.worker, srv.Defaults(model="lab"))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        from openai import OpenAI

        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.client = OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="none", max_retries=0, timeout=600)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def ask(self, model: str, problem):
        return self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": problem.question}],
                                                   extra_body={"thinktrace": {"gold": problem.answer}})

    def all_stored(self, responses) -> bool:
        """Every response's request has its result and a tree with the root and its paths."""
        ok = True
        by_run: dict[str, dict] = {}
        for r in responses:
            extra = r.model_extra["thinktrace"]
            if extra["run_id"] not in by_run:
                by_run[extra["run_id"]] = {x.position: x for x in run_results(self.store, extra["run_id"])}
            result = by_run[extra["run_id"]].get(extra["position"])
            ok &= result is not None and result.answer == extra["answer"] and \
                len(tree_nodes(self.store, extra["run_id"], result.problem_id)) > 1
        return bool(ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--cot", type=int, default=30, help="cot requests, one at a time, for the overhead")
    parser.add_argument("--dataset", default="arith:4")
    args = parser.parse_args()

    lm = load_model("lab")
    verifier = load_verifier("prm:lab", lm)
    problems = load_problems(args.dataset, limit=max(args.requests, args.cot))
    batch, chain = problems[:args.requests], problems[:args.cot]
    cfg = SearchConfig(n=args.n)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        engine_run(lm, verifier, "best_of_n", cfg, problems[:4], 4, folder)  # warm-up
        engine_wall, engine_tokens, _ = engine_run(lm, verifier, "best_of_n", cfg, batch, args.requests, folder)
        print(f"  engine best_of_n: {engine_wall:.2f} s", file=sys.stderr, flush=True)
        with Server(lm, verifier, folder, concurrency=args.requests) as server:
            for p in problems[:4]:
                server.ask(f"best_of_n@{args.n}/lab", p)  # warm-up
            started = time.perf_counter()
            with ThreadPoolExecutor(args.requests) as pool:
                responses = list(pool.map(lambda p: server.ask(f"best_of_n@{args.n}/lab", p), batch))
            serve_wall = time.perf_counter() - started
            serve_tokens = sum(r.usage.completion_tokens for r in responses)
            stored = server.all_stored(responses)
            print(f"  serve best_of_n: {serve_wall:.2f} s", file=sys.stderr, flush=True)

            # cot one at a time, twice each way, interleaved (the machine's load drifts): the medians of
            # a problem's time in the engine and of a request's latency at the client.
            engine_steps, latencies, cot = [], [], []
            for _ in range(2):
                engine_steps += engine_run(lm, None, "cot", SearchConfig(), chain, 1, folder)[2]
                for p in chain:
                    started = time.perf_counter()
                    cot.append(server.ask("cot/lab", p))
                    latencies.append(time.perf_counter() - started)
            cot_stored = server.all_stored(cot)

    engine_rate, serve_rate = engine_tokens / engine_wall, serve_tokens / serve_wall
    rows.append(("best_of_n n=%d, %d concurrent" % (args.n, args.requests), len(responses), stored,
                 f"{serve_wall:.2f}", f"{engine_wall:.2f}",
                 f"{serve_rate:.0f} vs {engine_rate:.0f} tok/s = {100 * serve_rate / engine_rate:.0f}%",
                 f"{len(batch) / serve_wall:.1f} vs {len(batch) / engine_wall:.1f} req/s"))
    serve_ms, engine_ms = 1000 * statistics.median(latencies), 1000 * statistics.median(engine_steps)
    rows.append((f"cot, {len(chain)} one at a time x2", len(cot), cot_stored, f"{sum(latencies):.2f}",
                 f"{sum(engine_steps):.2f}", f"overhead {serve_ms - engine_ms:.1f} ms/request (median)",
                 f"{serve_ms:.1f} vs {engine_ms:.1f} ms (median)"))
    header = ("workload", "requests", "all stored?", "serve wall s", "engine wall s", "throughput", "per request")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()

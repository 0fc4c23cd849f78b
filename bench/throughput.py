"""Tokens/s of raw batched `complete()` against each strategy on the same problems and budget.

The ratio column is the strategy's overhead: raw tokens/s divided by the strategy's tokens/s over
its whole wall time (generation, verifier, answer checking and writing every node to SQLite).

    .venv/bin/python bench/throughput.py [--model smollm2] [--problems 3] [--n 8] [--max-new-tokens 64]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from thinktrace import runner  # noqa: E402
from store import Store  # noqa: E402
from reasoning.backends import load_model  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402
from reasoning.verifiers import load_verifier  # noqa: E402


def raw_rate(lm, problems, n, max_new_tokens, temperature) -> tuple[int, float]:
    tokens, started = 0, time.perf_counter()
    for i, problem in enumerate(problems):
        [row] = lm.complete([lm.prompt(problem.question)], n=n, max_new_tokens=max_new_tokens,
                            temperature=temperature, seed=i)
        tokens += sum(c.n_tokens for c in row)
    return tokens, time.perf_counter() - started


def strategy_rate(lm, problems, strategy, n, verifier, max_new_tokens, dataset) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        cfg = SearchConfig(n=n, max_new_tokens=max_new_tokens)
        request = runner.RunRequest(strategy=strategy, dataset=dataset, verifier=verifier, config=cfg).validate()
        ver = load_verifier(verifier, lm)
        run_id = runner.create_run(store, request, problems, lm, ver)
        started = time.perf_counter()
        run = runner.execute(store, run_id, lm, ver)
        return run.tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="arith:2")
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    lm = load_model(args.model)
    problems = load_problems(args.dataset, limit=args.problems)
    raw_rate(lm, problems[:1], 1, 4, 0.0)  # warm-up: first-call allocations
    rows = []
    raw = {}
    for n, temperature in ((1, 0.0), (args.n, 0.8)):
        tokens, wall = raw_rate(lm, problems, n, args.max_new_tokens, temperature)
        raw[n] = tokens / wall
        rows.append((f"raw complete() n={n}", tokens, wall, raw[n], 1.0))
    for strategy, n, verifier in (("cot", 1, None), ("self_consistency", args.n, None),
                                  ("best_of_n", args.n, "self_eval"), ("best_of_n", args.n, "oracle")):
        tokens, wall = strategy_rate(lm, problems, strategy, n, verifier, args.max_new_tokens, args.dataset)
        rate = tokens / wall
        label = f"{strategy} n={n}" + (f" +{verifier}" if verifier else "")
        rows.append((label, tokens, wall, rate, raw[n] / rate))

    print(f"model: {lm.name} ({lm.n_params / 1e6:.0f}M params, {lm.device}, {lm.dtype}), "
          f"torch threads: {torch.get_num_threads()}, problems: {len(problems)} x {args.dataset}, "
          f"max new tokens: {args.max_new_tokens}")
    print(f"{'what':32} {'tokens':>7} {'wall s':>8} {'tokens/s':>9} {'overhead':>9}")
    for label, tokens, wall, rate, ratio in rows:
        print(f"{label:32} {tokens:7d} {wall:8.2f} {rate:9.1f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()

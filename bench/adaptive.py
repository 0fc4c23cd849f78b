"""Adaptive-Consistency against fixed-N self-consistency: accuracy and tokens on the same problems
and seed, through the runner into one SQLite file (so the runs can be opened in the app afterwards).

Rows: self-consistency at N (the cap), self-consistency's maj@k at the k nearest the adaptive run's
mean samples (from the same N-sample run by subsampling, thinktrace/curves.py), adaptive_consistency
with cap N, and optionally deepconf_online. Accuracy has a 95% bootstrap CI over problems; tokens
and samples per problem are mean ± std.

    .venv/bin/python bench/adaptive.py [--dataset arith:1] [--problems 4] [--n 6] [--batch 2]
        [--stop-threshold 0.95] [--temperature 0.8] [--max-new-tokens 48] [--seed 0] [--deepconf] [--db FILE]

The defaults take a few minutes on 2 busy CPU cores; for a real comparison use e.g. --problems 40
--n 16 --max-new-tokens 128 (and a GPU or patience).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from thinktrace import runner  # noqa: E402
from reasoning.backends import load_model  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from thinktrace.curves import load_curves  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402
from store import Store  # noqa: E402
from store.curves import problem_results  # noqa: E402


def run(store, lm, strategy, problems, dataset, seed, cfg) -> tuple[str, float]:
    request = runner.RunRequest(strategy=strategy, dataset=dataset, seed=seed, config=cfg).validate()
    run_id = runner.create_run(store, request, problems, lm, None)
    started = time.perf_counter()
    runner.execute(store, run_id, lm, None)
    return run_id, time.perf_counter() - started


def spend(store, run_id, cap) -> tuple[np.ndarray, np.ndarray]:
    rows = problem_results(store, run_id).values()
    return (np.array([r.tokens for r in rows], float), np.array([r.meta.get("samples", cap) for r in rows], float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="arith:1")
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--n", type=int, default=6, help="fixed N of self-consistency = the adaptive cap")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--stop-threshold", type=float, default=0.95)
    parser.add_argument("--temperature", type=float, default=SearchConfig.temperature)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deepconf", action="store_true", help="add a deepconf_online row (warm-up n/2)")
    parser.add_argument("--db", default=None, help="keep the runs in this SQLite file (default: a temp file)")
    args = parser.parse_args()

    folder = tempfile.mkdtemp()
    store = Store.open(str(args.db or Path(folder) / "adaptive.db"))
    lm = load_model(args.model)
    problems = load_problems(args.dataset, limit=args.problems, seed=args.seed)
    base = dict(n=args.n, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    plan = [("self_consistency", SearchConfig(**base)),
            ("adaptive_consistency", SearchConfig(**base, batch=args.batch, stop_threshold=args.stop_threshold))]
    if args.deepconf:
        plan.append(("deepconf_online", SearchConfig(**base, warmup=max(1, args.n // 2), conf_window=16)))
    ids, walls = {}, {}
    for strategy, cfg in plan:
        ids[strategy], walls[strategy] = run(store, lm, strategy, problems, args.dataset, args.seed, cfg)

    curves = load_curves(store, run_ids=list(ids.values()))
    rows = [("strategy", "samples/problem", "tokens/problem", "accuracy", "95% CI", "wall s")]
    maj = {p.k: p for p in curves.points if p.estimator == "maj"}
    for strategy, run_id in ids.items():
        tokens, samples = spend(store, run_id, args.n)
        [point] = [p for p in curves.points if p.run_id == run_id
                   and (p.estimator == "adaptive" or (p.estimator == "maj" and p.k == args.n))]
        rows.append((f"{strategy} (N={args.n})", f"{samples.mean():.2f} ± {samples.std():.2f}",
                     f"{tokens.mean():.0f} ± {tokens.std():.0f}", f"{point.accuracy:.3f}",
                     f"{point.ci_low:.2f}-{point.ci_high:.2f}", f"{walls[strategy]:.0f}"))
        if strategy == "adaptive_consistency":
            k = min(maj, key=lambda k: (abs(k - samples.mean()), k))
            p = maj[k]
            rows.append((f"self-consistency maj@{k} (subsampled)", f"{k}", f"{p.tokens_per_problem:.0f}",
                         f"{p.accuracy:.3f}", f"{p.ci_low:.2f}-{p.ci_high:.2f}", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"{lm.name} · {args.dataset} · {len(problems)} problems · seed {args.seed} · "
          f"max_new_tokens {args.max_new_tokens} · db {store.describe()}")
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for note in curves.notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()

"""Compute-optimal policy vs fixed strategies (Snell et al. 2024), on problems the policy was not fitted on.

1. Two sweeps with the same settings on mixed levels (arith:1-5): one to fit on (--fit-seed), one held
   out (--test-seed, other problems). Strategies: cot (the probe), best-of-N (one shared run of N chains:
   maj@k, naive and weighted best-of-k), beam search and DVTS at each budget; the verifier prm:lab.
2. `policy build` on the fit sweep (and the oracle-difficulty policy, an upper bound).
3. On the held-out sweep: the policy at each fixed arm's mean tokens against the best fixed arm within
   those tokens, with 95% bootstrap CIs; the fewest tokens at which the policy reaches weighted
   best-of-N's best accuracy.
4. One real `compute_optimal` run on the held-out problems at one budget, against what step 3 expected.
5. The time to build a policy from a 10-strategy x 6-budget sweep of 500 problems (synthetic outcomes).

    .venv/bin/python bench/policy.py                     # ~25 min on 2 CPU cores; sweeps are kept in --db
    .venv/bin/python bench/policy.py --problems 50 --budgets 1,2,4 --strategies cot,best_of_n,beam_search

Sweeps are found again by name in --db, so a second call reuses (or resumes) them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoning.config import SearchConfig  # noqa: E402
from reasoning.policy import Arm, Outcomes, fit  # noqa: E402
from store import Store  # noqa: E402
from store.sweeps import list_sweeps  # noqa: E402
from thinktrace import runner  # noqa: E402
from thinktrace.cli.policy import comparison_table  # noqa: E402
from thinktrace.policy import build_policy, compare  # noqa: E402
from thinktrace.sweep import run_sweep  # noqa: E402


def sweep(store: Store, name: str, args, seed: int) -> str:
    found = [s for s in list_sweeps(store) if s.name == name]
    return run_sweep(store, args.strategies.split(","), [int(b) for b in args.budgets.split(",")], args.dataset,
                     limit=args.problems, seed=seed, model=args.model, verifier=args.verifier,
                     cfg=SearchConfig(), name=name, sweep_id=found[0].id if found else None,
                     concurrency=args.concurrency, progress=True)


def build_time(problems: int = 500, strategies: int = 10, budgets: int = 6, n_bins: int = 4) -> float:
    """Seconds to fit a policy on synthetic outcomes of that size (the fitting, not the reading)."""
    rng = np.random.default_rng(0)
    arms = [Arm("cot", {}, "cot")] + [Arm(f"s{s}", {"n": 2 ** b}, f"s{s} n={2 ** b}")
                                      for s in range(strategies) for b in range(budgets)]
    outcomes = Outcomes(keys=[str(i) for i in range(problems)], arms=arms, probe=rng.random(problems),
                        probe_tokens=rng.integers(50, 300, problems).astype(float),
                        correct=rng.random((problems, len(arms))),
                        tokens=rng.integers(50, 5000, (problems, len(arms))).astype(float))
    started = time.perf_counter()
    policy = fit(outcomes, n_bins=n_bins)
    policy.frontier()
    policy.plan(1000.0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/thinktrace-bench-policy.db")
    parser.add_argument("--model", default="lab")
    parser.add_argument("--verifier", default="prm:lab")
    parser.add_argument("--dataset", default="arith:1-5")
    parser.add_argument("--problems", type=int, default=250, help="per sweep (fit and held-out)")
    parser.add_argument("--strategies", default="cot,best_of_n,beam_search,dvts")
    parser.add_argument("--budgets", default="1,2,4,8,16")
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument("--fit-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=2)
    parser.add_argument("--run-budget", type=float, default=None,
                        help="mean tokens of the real compute_optimal run (default: the policy's point nearest 1/2 of "
                             "weighted best-of-N's best tokens)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    store = Store(f"sqlite:///{args.db}")
    tag = f"{args.dataset} x{args.problems} {args.strategies} @{args.budgets}"
    fit_id = sweep(store, f"policy bench fit seed {args.fit_seed}: {tag}", args, args.fit_seed)
    test_id = sweep(store, f"policy bench held-out seed {args.test_seed}: {tag}", args, args.test_seed)
    policy_id, policy, seconds = build_policy(store, fit_id, n_bins=args.bins)
    oracle_id, _, _ = build_policy(store, fit_id, n_bins=args.bins, oracle=True)
    print(f"\npolicy {policy_id[:8]} fitted on sweep {fit_id[:8]} in {seconds:.2f} s (reading the sweep included); "
          f"{policy.n_bins} bins, {len(policy.arms)} arms")
    result = compare(store, policy_id, test_id)
    for line in comparison_table(result):
        print(line)
    print()
    for line in comparison_table(compare(store, oracle_id, test_id)):
        print(line)

    fixed_best = max(result.fixed, key=lambda p: p.accuracy)
    print(f"\nbest fixed arm overall: {fixed_best.label} {100 * fixed_best.accuracy:.1f}% @ {fixed_best.tokens:.0f} tokens")
    wins = sum(1 for (p, _), (_, b) in zip(result.policy_points, result.best_fixed) if b is None or p.accuracy >= b.accuracy - 1e-9)
    print(f"policy >= best fixed within its tokens at {wins}/{len(result.policy_points)} budgets")

    budget = args.run_budget
    if budget is None and result.reference is not None:
        budget = min((p.tokens for p in result.curve), key=lambda t: abs(t - result.reference.tokens / 2))
    if budget is not None:
        request = runner.RunRequest(strategy="compute_optimal", dataset=args.dataset, model=args.model,
                                    verifier=args.verifier, limit=args.problems, seed=args.test_seed,
                                    config=SearchConfig(policy=policy_id, budget=int(round(budget))))
        runner.prepare(store, request)
        request.validate()
        from reasoning.backends import load_model
        from reasoning.problems import load_problems
        from reasoning.verifiers import load_verifier

        lm = load_model(args.model)
        verifier = load_verifier(args.verifier, lm)
        problems = load_problems(args.dataset, limit=args.problems, seed=args.test_seed)
        run_id = runner.create_run(store, request, problems, lm, verifier)
        run = runner.execute(store, run_id, lm, verifier, concurrency=args.concurrency)
        expected, _ = policy.evaluate(compare_outcomes(store, test_id, policy.probe), float(int(round(budget))))
        accuracy = sum(1 for r in _results(store, run_id) if r) / run.n_problems
        print(f"\nreal compute_optimal run {run_id[:8]} at --budget {int(round(budget))}: {100 * accuracy:.1f}% at "
              f"{run.tokens / run.n_problems:.0f} tokens per question; the held-out sweep expected "
              f"{100 * expected.accuracy:.1f}% at {expected.tokens:.0f} (sampling draws differ: the sweep's figure is an expectation)")
    print(f"\nbuilding a policy from a 10-strategy x 6-budget sweep of 500 problems (synthetic outcomes): "
          f"{build_time():.3f} s (target < 2 s)")


def compare_outcomes(store, sweep_id, probe):
    from thinktrace.policy import sweep_outcomes

    return sweep_outcomes(store, sweep_id, probe)[0]


def _results(store, run_id):
    from store.curves import problem_results

    return [row.correct for row in problem_results(store, run_id).values()]


if __name__ == "__main__":
    main()

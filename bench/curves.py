"""Time `curve_points` on a run the size of a real sweep: 500 problems x 64 samples, every
estimator at k = 1, 2, 4, ..., 64. Target: under 2 s in total on a 2-core machine.
The last row times the whole path from the store: the same run written as a sweep to a temp
SQLite file (two step nodes per chain), then `thinktrace.curves.load_curves` (query, leaves,
answer classes, estimators, bootstrap CIs).

    .venv/bin/python bench/curves.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reasoning.estimators import ESTIMATORS, ProblemSamples, Sample, curve_points  # noqa: E402

N_PROBLEMS, N_SAMPLES, TARGET_S = 500, 64, 2.0
KS = [1, 2, 4, 8, 16, 32, 64]
ANSWERS = ["42", "41", "24", "420", None]  # "42" is gold; None = the sample gave no answer


def synthetic_run(seed: int = 0) -> list[ProblemSamples]:
    """Each problem has its own chance of a correct sample; wrong samples pick a distractor or
    give no answer. The verifier scores correct paths higher on average, with overlap."""
    rng = np.random.default_rng(seed)
    problems = []
    for i in range(N_PROBLEMS):
        solve_rate = rng.beta(1.0, 1.5)
        correct = rng.random(N_SAMPLES) < solve_rate
        wrong_choice = rng.integers(1, len(ANSWERS), N_SAMPLES)
        scores = 1 / (1 + np.exp(-(rng.normal(0.0, 1.0, N_SAMPLES) + 1.5 * correct)))
        tokens = rng.integers(50, 400, N_SAMPLES)
        samples = [
            Sample(
                answer=ANSWERS[0] if ok else ANSWERS[choice],
                correct=None if not ok and ANSWERS[choice] is None else bool(ok),
                score=float(score),
                tokens=int(n_tokens),
            )
            for ok, choice, score, n_tokens in zip(correct, wrong_choice, scores, tokens)
        ]
        problems.append(ProblemSamples(f"p{i}", samples, difficulty=int(rng.integers(1, 6))))
    return problems


def timed(problems: list[ProblemSamples], estimators: tuple[str, ...], repeats: int = 3) -> float:
    """Best of `repeats` wall times, so a cold first call does not decide the number."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        curve_points(problems, ks=KS, estimators=estimators)
        times.append(time.perf_counter() - start)
    return min(times)


def stored_sweep(problems: list[ProblemSamples], folder: str):
    """Write the synthetic run to a fresh database as a one-run sweep; returns (store, sweep id)."""
    from store import Store
    from store import models as m

    store = Store(f"sqlite:///{folder}/bench.db")
    sweep = m.Sweep(name="bench", params={"budgets": KS, "dataset": "bench"})
    run = m.Run(strategy="best_of_n", params={"n": N_SAMPLES}, model_name="synthetic", model_params=135_000_000,
                verifier="self_eval", dataset="bench", n_problems=len(problems), status=m.DONE, sweep_id=sweep.id)
    store.add(sweep)  # before the run that refers to it
    rows = store.add(run, *[m.Problem(dataset="bench", key=p.key, question=p.key, answer=ANSWERS[0],
                                      difficulty=p.difficulty) for p in problems])[1:]
    nodes, results, links = [], [], []
    for position, (row, problem) in enumerate(zip(rows, problems)):
        links.append({"run_id": run.id, "position": position, "problem_id": row.id})
        # bulk inserts need the same keys in every row
        common = {"run_id": run.id, "problem_id": row.id, "text": "step", "meta": {}, "answer": None,
                  "correct": None, "path_score": None, "status": "kept"}
        nodes.append({**common, "seq": 0, "parent_seq": None, "tokens": 0})
        for i, s in enumerate(problem.samples):
            nodes.append({**common, "seq": 2 * i + 1, "parent_seq": 0, "tokens": s.tokens // 2})
            nodes.append({**common, "seq": 2 * i + 2, "parent_seq": 2 * i + 1, "tokens": s.tokens - s.tokens // 2,
                          "answer": s.answer, "correct": s.correct, "path_score": s.score, "status": "terminal"})
        results.append({"run_id": run.id, "problem_id": row.id, "position": position, "votes": {}, "meta": {}})
    store.insert(m.RunProblem, links)
    store.insert(m.Node, nodes)
    store.insert(m.Result, results)
    return store, sweep.id


def timed_load(store, sweep_id: str, repeats: int = 3) -> float:
    from thinktrace.curves import load_curves

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_curves(store, sweep_id=sweep_id)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    problems = synthetic_run()
    print(f"{N_PROBLEMS} problems x {N_SAMPLES} samples, ks = {KS}")
    print(f"{'estimator':<10} {'ks':>3} {'seconds':>8}  (best of 3)")
    for name in ESTIMATORS:
        print(f"{name:<10} {len(KS):>3} {timed(problems, (name,)):>8.3f}")
    total = timed(problems, ESTIMATORS)
    verdict = "ok" if total < TARGET_S else "SLOW"
    print(f"{'all':<10} {len(KS):>3} {total:>8.3f}  (target < {TARGET_S:.0f} s: {verdict})")
    with tempfile.TemporaryDirectory() as folder:
        store, sweep_id = stored_sweep(problems, folder)
        print(f"{'store':<10} {len(KS):>3} {timed_load(store, sweep_id):>8.3f}  (load_curves from SQLite: "
              f"{N_PROBLEMS * (2 * N_SAMPLES + 1)} nodes, all estimators)")


if __name__ == "__main__":
    main()

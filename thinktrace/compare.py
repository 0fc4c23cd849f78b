"""Is the difference between two runs real? The paired test of two runs on the problems both graded
(reasoning.estimators.paired_test: exact McNemar and a paired bootstrap CI), for `compare A B` and the
Compare page."""
from __future__ import annotations

from reasoning.errors import UserError
from reasoning.estimators import PairedTest, paired_test
from store import Store
from store.analysis import Outcome, outcomes


def paired_outcomes(rows: list[Outcome], run_a: str, run_b: str) -> tuple[list[bool], list[bool]]:
    """Correctness of the two runs on the problems both graded, in the first run's order."""
    a = {o.problem_id: o.correct for o in rows if o.run_id == run_a and o.correct is not None}
    b = {o.problem_id: o.correct for o in rows if o.run_id == run_b and o.correct is not None}
    shared = [pid for pid in a if pid in b]
    return [bool(a[pid]) for pid in shared], [bool(b[pid]) for pid in shared]


def compare_runs(store: Store, run_a: str, run_b: str, rows: list[Outcome] | None = None) -> PairedTest:
    if run_a == run_b:
        raise UserError("compare two different runs")
    a, b = paired_outcomes(rows if rows is not None else outcomes(store, [run_a, run_b]), run_a, run_b)
    if not a:
        raise UserError(f"runs {run_a[:8]} and {run_b[:8]} share no graded problem: compare runs on the same "
                        f"problems (same dataset, limit and seed)")
    return paired_test(a, b)

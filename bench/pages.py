"""Server-side build time of the Tree page (100, 1,000, 5,000 nodes) and the Compare page (1,000
problems), on a real SQLite file. Target: under 1 s for a 1,000-node tree.

Two numbers per case: `figure` is load from the store + build the plotly figure + serialise it (what
the page sends); `page` is the whole page script run through Streamlit's AppTest (widgets included).

    .venv/bin/python bench/pages.py
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is called pages.py: its own folder must not be on the path, or it would shadow the app's
# pages/ package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

from store import Store  # noqa: E402
from store import models as m  # noqa: E402


def make_run(store: Store, name: str, problems: list[int], strategy: str = "beam_search") -> str:
    run = m.Run(name=name, strategy=strategy, params={"n": 4}, model_name="bench", verifier="self_eval",
                status=m.DONE, n_problems=len(problems))
    store.add(run)  # before the rows that refer to it
    store.add(*[m.RunProblem(run_id=run.id, position=pos, problem_id=pid) for pos, pid in enumerate(problems)])
    return run.id


def make_problems(store: Store, count: int, tag: str) -> list[int]:
    rows = store.add(*[m.Problem(dataset=f"bench-{tag}", key=str(i), question=f"What is {i} + {i}? " * 3,
                                 answer=str(2 * i)) for i in range(count)])
    return [r.id for r in rows]


def add_tree(store: Store, run_id: str, problem_id: int, n: int, seed: int = 0) -> None:
    """A bushy search tree: each node hangs under one of the 30 newest, statuses and scores mixed."""
    rng = random.Random(seed)
    depth = {0: 0}
    rows = [dict(run_id=run_id, problem_id=problem_id, seq=0, parent_seq=None, depth=0, text="question",
                 status="selected", meta={})]
    for seq in range(1, n):
        parent = rng.randrange(max(0, seq - 30), seq)
        depth[seq] = depth[parent] + 1
        status = rng.choice(["kept", "pruned", "terminal"])
        rows.append(dict(run_id=run_id, problem_id=problem_id, seq=seq, parent_seq=parent, depth=depth[seq],
                         text=f"Step {seq}: so we add {seq} and get {2 * seq}. " * 2, tokens=20, logprob=-4.0,
                         score=rng.random(), path_score=rng.random(), status=status,
                         answer=str(seq) if status == "terminal" else None,
                         correct=rng.random() < 0.4 if status == "terminal" else None, meta={}))
    store.insert(m.Node, rows)
    store.add(m.Result(run_id=run_id, problem_id=problem_id, position=0, node_seq=n - 1, answer="1",
                       correct=False, tokens=20 * n))


def add_results(store: Store, run_id: str, problems: list[int], accuracy: float, seed: int) -> None:
    rng = random.Random(seed)
    store.insert(m.Result, [
        dict(run_id=run_id, problem_id=pid, position=pos, answer="1", correct=rng.random() < accuracy,
             tokens=rng.randrange(50, 500), wall_seconds=rng.random(), votes={}, meta={})
        for pos, pid in enumerate(problems)])


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def page_time(page: str, store: Store, **params) -> float:
    from streamlit.testing.v1 import AppTest

    os.environ["THINKTRACE_DB"] = store.url

    def run():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        for key, value in params.items():
            at.query_params[key] = value
        started = time.perf_counter()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return time.perf_counter() - started

    run()  # warm imports
    return statistics.median(run() for _ in range(3))


def main() -> None:
    from store.analysis import outcomes, shared_summary
    from store.runs import run_problems, tree_nodes
    from viz.compare import outcome_matrix_figure
    from viz.tree import tree_figure

    folder = Path(tempfile.mkdtemp(prefix="thinktrace-bench-"))
    store = Store(f"sqlite:///{folder / 'bench.db'}")
    rows = []
    for n in (100, 1000, 5000):
        [pid] = make_problems(store, 1, f"tree{n}")
        rid = make_run(store, f"tree {n}", [pid])
        add_tree(store, rid, pid, n)

        def build():
            tree_figure(tree_nodes(store, rid, pid), selected_seq=n - 1).to_json()

        rows.append((f"Tree page, {n:,} nodes", timed(build), page_time("pages/tree.py", store, run=rid, problem="1")))

    problems = make_problems(store, 1000, "compare")
    a = make_run(store, "compare A", problems, "cot")
    b = make_run(store, "compare B", problems, "self_consistency")
    add_results(store, a, problems, 0.3, 1)
    add_results(store, b, problems, 0.5, 2)

    def compare():
        import numpy as np

        out = outcomes(store, [a, b])
        shared_summary(store, [a, b])
        z = np.full((2, 1000), np.nan)
        for o in out:
            z[0 if o.run_id == a else 1, o.position] = float(bool(o.correct))
        outcome_matrix_figure(["A", "B"], [str(i + 1) for i in range(1000)], z).to_json()
        run_problems(store, a)

    rows.append(("Compare page, 1,000 problems x 2 runs", timed(compare),
                 page_time("pages/compare.py", store, run=f"{a},{b}")))

    print(f"{'case':40}  {'figure (s)':>10}  {'page (s)':>9}")
    for case, fig_s, page_s in rows:
        print(f"{case:40}  {fig_s:10.3f}  {page_s:9.3f}")
    print(f"(median of 3; database {folder / 'bench.db'})")


if __name__ == "__main__":
    main()

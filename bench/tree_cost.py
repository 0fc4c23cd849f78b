"""What step-level tree search costs per generated token, against best-of-N on the same problems.

Beam search calls `complete` once per step with prompts = the question's few-shot prompt + each
beam's steps so far; without prefix reuse every call re-runs all of that. The table shows, per
strategy: wall time, generated tokens, wall per generated token, prompt tokens run through the model
per generated token ("re-processed"), and the wall-per-token ratio to best-of-N (target: beam
search <= 1.5x). Rows without a note use the backend's own choice (prefix reuse by model size,
transformers_lm.PREFIX_REUSE_MIN_PARAMS); "reuse on" / "reuse off" force it, to check that choice.
The prefix cache is emptied before each row so no row profits from the one before. The default
verifier is the oracle (free), so the numbers are the language model's; pass --verifier self_eval
to include a model-based verifier.

    THINKTRACE_THREADS=1 .venv/bin/python bench/tree_cost.py [--problems 2] [--n 8] [--beam-width 4] [--repeat 1]

--repeat R measures each row R times, in turn, and keeps the fastest: on a shared machine the
slowest runs measure the neighbours.
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
from reasoning.strategies import names  # noqa: E402
from reasoning.verifiers import load_verifier  # noqa: E402


def measure(lm, problems, dataset, strategy, verifier, cfg, share=None) -> dict:
    """Run one strategy through the runner (SQLite included) and read the backend's counters;
    `share` forces prefix reuse on or off (None: the backend's choice)."""
    chosen = lm.share_prefixes
    if share is not None:
        lm.share_prefixes = share
    lm.prefix_cache.clear()
    before = dict(lm.stats)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        request = runner.RunRequest(strategy=strategy, dataset=dataset, verifier=verifier, config=cfg).validate()
        ver = load_verifier(verifier, lm)
        run_id = runner.create_run(store, request, problems, lm, ver)
        started = time.perf_counter()
        runner.execute(store, run_id, lm, ver)
        wall = time.perf_counter() - started
    lm.share_prefixes = chosen
    delta = {k: lm.stats[k] - before[k] for k in lm.stats}
    return {"wall": wall, "generated": delta["generated_tokens"], "computed": delta["prompt_tokens_computed"],
            "total": delta["prompt_tokens_total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="arith:2")
    parser.add_argument("--problems", type=int, default=2)
    parser.add_argument("--n", type=int, default=8, help="N of both strategies")
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--verifier", default="oracle")
    parser.add_argument("--repeat", type=int, default=1, help="measure each row this often, keep the fastest")
    args = parser.parse_args()
    missing = {"best_of_n", "beam_search"} - set(names())
    if missing:
        sys.exit(f"strategies not registered: {', '.join(sorted(missing))}")

    lm = load_model(args.model)
    problems = load_problems(args.dataset, limit=args.problems)
    bon = SearchConfig(n=args.n)
    beam = SearchConfig(n=args.n, beam_width=args.beam_width)
    # Warm-up of both code paths, reuse on and off: the first beam search in a process is slower
    # (new batch shapes), which made whichever row came first look worse.
    for share in (True, False):
        measure(lm, problems[:1], args.dataset, "beam_search", args.verifier, beam, share=share)
    plan = [("best_of_n", "best_of_n", bon, None), ("beam_search", "beam_search", beam, None),
            ("beam_search, reuse on", "beam_search", beam, True), ("beam_search, reuse off", "beam_search", beam, False)]
    best: dict[str, dict] = {}
    for _ in range(args.repeat):  # rows in turn, so a busy spell of the machine hits them all alike
        for label, strategy, cfg, share in plan:
            r = measure(lm, problems, args.dataset, strategy, args.verifier, cfg, share)
            if label not in best or r["wall"] < best[label]["wall"]:
                best[label] = r
    rows = [(label, best[label]) for label, *_ in plan]

    print(f"model: {lm.name} ({lm.device}, {lm.dtype}), torch threads: {torch.get_num_threads()}, "
          f"problems: {len(problems)} x {args.dataset}, N={args.n}, beam width {args.beam_width}, "
          f"verifier: {args.verifier}, step tokens <= {beam.max_step_tokens}, chain tokens <= {bon.max_new_tokens}, "
          f"prefix reuse (backend's choice): {'on' if lm.share_prefixes else 'off'}, fastest of {args.repeat}")
    print(f"{'strategy':24} {'wall s':>7} {'gen tok':>8} {'ms/gen tok':>11} {'prompt tok':>11} "
          f"{'re-proc/gen':>12} {'vs BoN':>7}")
    base = rows[0][1]["wall"] / max(rows[0][1]["generated"], 1)
    for label, r in rows:
        per_token = r["wall"] / max(r["generated"], 1)
        print(f"{label:24} {r['wall']:7.1f} {r['generated']:8d} {1000 * per_token:11.1f} {r['total']:11d} "
              f"{r['computed'] / max(r['generated'], 1):12.2f} {per_token / base:6.2f}x")


if __name__ == "__main__":
    main()

"""Reprint the lab thinker's table (issue 15, MODEL_CARD.md "The lab thinker"): greedy accuracy per
level with no thinking, thinking as it comes, thinking cut at T tokens and thinking forced on to T
("Wait"), the thinking tokens each spent, the log-linear slope of accuracy on log2(thinking tokens)
with its 95% CI, and batched generation speed.

    THINKTRACE_THREADS=2 .venv/bin/python bench/thinking.py                # 50 problems per level
    THINKTRACE_THREADS=2 .venv/bin/python bench/thinking.py --full         # 200 per level, as in the card
    ... --levels 3,4,5 --model /path/to/thinker --maxima 16,32,64 --minima 384 --parallel 8
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reasoning.backends import load_model  # noqa: E402
from reasoning.lab.think_eval import evaluate, format_table, parallel_points  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="200 problems per level (model card numbers)")
    parser.add_argument("--per-level", type=int, default=50)
    parser.add_argument("--levels", default="3,4,5")
    parser.add_argument("--model", default="lab-think", help="lab-think or a thinker folder")
    parser.add_argument("--maxima", default=None, help="thinking cut at these budgets, comma-separated "
                        "(default: think_eval's)")
    parser.add_argument("--minima", default=None, help="thinking forced on (\"Wait\") to these budgets")
    parser.add_argument("--parallel", type=int, default=0, metavar="N",
                        help="also Snell's other half: majority@k of N samples (T=0.8) per problem, without and "
                             "with thinking, with the tokens k samples cost (compare with the rows above)")
    parser.add_argument("--parallel-per-level", type=int, default=50, help="problems per level for --parallel")
    args = parser.parse_args()
    started = time.time()
    lm = load_model(args.model)
    budgets = {name: tuple(int(x) for x in value.split(",") if x) for name, value in
               (("maxima", args.maxima), ("minima", args.minima)) if value is not None}
    levels, per_level = tuple(int(x) for x in args.levels.split(",")), 200 if args.full else args.per_level
    report = evaluate(lm, levels=levels, per_level=per_level, **budgets,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(report))
    if args.parallel:
        print("\n| level | parallel | k | accuracy | tokens per problem |\n|---|---|---|---|---|")
        for level in levels:
            for think in (False, True):
                for k, accuracy, tokens in parallel_points(lm, level, args.parallel_per_level, n=args.parallel,
                                                          think=think):
                    print(f"| {level} | majority@k, {'thinking' if think else 'no thinking'} | {k} | "
                          f"{100 * accuracy:.1f}% | {tokens:.0f} |")
    print(f"({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()

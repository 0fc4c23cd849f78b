"""Reprint the lab thinker's table (issue 15, MODEL_CARD.md "The lab thinker"): greedy accuracy per
level with no thinking, thinking as it comes, thinking cut at T tokens and thinking forced on to T
("Wait"), the thinking tokens each spent, the log-linear slope of accuracy on log2(thinking tokens)
with its 95% CI, and batched generation speed.

    THINKTRACE_THREADS=2 .venv/bin/python bench/thinking.py                # 50 problems per level
    THINKTRACE_THREADS=2 .venv/bin/python bench/thinking.py --full         # 200 per level, as in the card
    ... --levels 3,4,5 --model /path/to/thinker
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reasoning.backends import load_model  # noqa: E402
from reasoning.lab.think_eval import evaluate, format_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="200 problems per level (model card numbers)")
    parser.add_argument("--per-level", type=int, default=50)
    parser.add_argument("--levels", default="3,4,5")
    parser.add_argument("--model", default="lab-think", help="lab-think or a thinker folder")
    args = parser.parse_args()
    started = time.time()
    lm = load_model(args.model)
    report = evaluate(lm, levels=tuple(int(x) for x in args.levels.split(",")),
                      per_level=200 if args.full else args.per_level,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(report))
    print(f"({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()

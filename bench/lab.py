"""Reprint the targets table of the System-2 lab pair (issue 8): greedy accuracy per level,
pass@16 / majority@16 / weighted best-of-16 with the lab PRM, beam search vs best-of-N at equal N,
the PRM's step AUC, level-3 beam search N=16 time and batched tokens/s.

    THINKTRACE_THREADS=1 .venv/bin/python bench/lab.py           # quick: 50 greedy / 25 sampled per level
    THINKTRACE_THREADS=1 .venv/bin/python bench/lab.py --full    # 200 per level, as in the model card
    ... --record    also rewrites the samples the Learn page's budget lesson draws
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from reasoning.config import SearchConfig  # noqa: E402
from reasoning.lab.evaluate import evaluate, format_table, load_pair  # noqa: E402
from reasoning.lab.lesson import SAMPLES_FILE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="200 problems per level (model card numbers)")
    parser.add_argument("--per-level", type=int, default=50, help="problems per level, greedy")
    parser.add_argument("--sample-per-level", type=int, default=25, help="problems per level, 16 samples each")
    parser.add_argument("--beam-problems", type=int, default=10, help="problems per level for beam vs best-of-N")
    parser.add_argument("--temperature", type=float, default=SearchConfig.temperature,
                        help="sampling temperature (the CLI default)")
    parser.add_argument("--record", action="store_true", help="save the samples for the Learn page")
    parser.add_argument("--no-checker", action="store_true", help="score with the PRM alone, without its arithmetic checker")
    args = parser.parse_args()
    started = time.time()
    lm, verifier = load_pair(checker=not args.no_checker)
    report = evaluate(lm, verifier, per_level=200 if args.full else args.per_level,
                      sample_per_level=200 if args.full else args.sample_per_level,
                      beam_problems=100 if args.full else args.beam_problems, temperature=args.temperature,
                      record=SAMPLES_FILE if args.record else None,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(report))
    print(f"({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()

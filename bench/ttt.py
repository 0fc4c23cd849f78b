"""Test-time training on arclab's held-out compositions (issue 19; MODEL_CARD.md "lab-arc"): accuracy
in context, with augmented voting alone, with TTT (the prediction on the task as given), and with TTT
plus augmented voting, each with a 95% bootstrap CI, ARC's pass@2, and seconds per task.

Two passes per task set: one with no training (n augmented predictions: its first is the in-context
answer) and one with TTT (the same n predictions after training: its first is TTT alone), so each
row is read from the same predictions the strategy stores.

    .venv/bin/python bench/ttt.py                       # 200 held-out tasks (seed 0), the card's table
    .venv/bin/python bench/ttt.py --tasks 40 --seed 2   # a dev set for choosing knobs (not the card's)
    .venv/bin/python bench/ttt.py --steps 0,8,16,32     # accuracy against TTT steps
    ... --model lab-arc --n 8 --lr 2e-3 --method full --augment 8 --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from reasoning.backends import load_model  # noqa: E402
from reasoning.config import SearchConfig  # noqa: E402
from reasoning.estimators import bootstrap_ci, paired_test  # noqa: E402
from reasoning.problems import load_problems  # noqa: E402
from reasoning.strategies import lookup  # noqa: E402
from reasoning.fewshot import rank  # noqa: E402
from reasoning.tree import Tree  # noqa: E402


def vote(answers: list[str | None]) -> str | None:
    ranked = rank(answers)
    return ranked[0] if ranked else None


def solve(problems, lm, cfg: SearchConfig, label: str) -> dict:
    """Per task: the answers of the n augmented predictions (in order), the training log, seconds."""
    search = lookup("ttt").search
    out = []
    for p in tqdm(problems, desc=label, file=sys.stderr, leave=False):
        tree = Tree(p.question)
        started = time.perf_counter()
        outcome = search(p, lm, None, cfg, tree)
        seconds = time.perf_counter() - started
        preds = [n for n in tree.nodes if n.meta.get("augmentation")]
        out.append({"gold": p.answer, "answers": [n.answer for n in preds], "attempts": outcome.meta["attempts"],
                    "composition": p.meta.get("composition"), "seconds": seconds,
                    "train_seconds": tree.root.meta["ttt"]["seconds"], "losses": tree.root.meta["ttt"]["losses"]})
    return out


def row(name: str, correct: list[bool], seconds: float, pass2: list[bool] | None = None) -> str:
    acc = float(np.mean(correct))
    low, high = bootstrap_ci(correct, n_boot=2000)
    p2 = f"{100 * np.mean(pass2):5.1f}%" if pass2 is not None else "   –  "
    return f"| {name:<34} | {100 * acc:5.1f}% [{100 * low:4.1f}, {100 * high:4.1f}] | {p2} | {seconds:6.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="task set seed (0: the evaluation set)")
    parser.add_argument("--model", default="lab-arc")
    parser.add_argument("--n", type=int, default=8, help="augmented predictions")
    parser.add_argument("--steps", default="24", help="TTT steps; several (0,8,16,32) draw accuracy against steps")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--method", default=None)
    parser.add_argument("--augment", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    problems = load_problems("arclab:test", limit=args.tasks, seed=args.seed)
    knobs = {k: v for k, v in (("ttt_lr", args.lr), ("ttt_method", args.method), ("ttt_augment", args.augment),
                               ("ttt_batch", args.batch)) if v is not None}
    steps = [int(s) for s in args.steps.split(",")]
    base = solve(problems, lm, SearchConfig(n=args.n, ttt_steps=0, **knobs), "in context")
    print(f"lab-arc ({lm.n_params:,} parameters) on {len(problems)} arclab:test tasks (held-out compositions, seed "
          f"{args.seed}); n = {args.n} augmented predictions; knobs {knobs or 'defaults'}\n")
    print("| | accuracy [95% CI] | pass@2 | s/task |\n|---|---:|---:|---:|")
    sec = np.mean([r["seconds"] for r in base])
    print(row("in context (greedy, no training)", [r["answers"][0] == r["gold"] for r in base], sec / args.n))
    print(row(f"in context + vote of {args.n} augmentations", [vote(r["answers"]) == r["gold"] for r in base], sec,
              [r["gold"] in r["attempts"] for r in base]))
    for s in steps:
        if s == 0:
            continue
        tuned = solve(problems, lm, SearchConfig(n=args.n, ttt_steps=s, **knobs), f"TTT {s} steps")
        sec = np.mean([r["seconds"] for r in tuned])
        train = np.mean([r["train_seconds"] for r in tuned])
        print(row(f"TTT, {s} steps (task as given)", [r["answers"][0] == r["gold"] for r in tuned], train))
        print(row(f"TTT, {s} steps + vote of {args.n}", [vote(r["answers"]) == r["gold"] for r in tuned], sec,
                  [r["gold"] in r["attempts"] for r in tuned]))
        first, last = np.mean([r["losses"][0] for r in tuned]), np.mean([r["losses"][-1] for r in tuned])
        print(f"|   (training loss {first:.3f} -> {last:.3f}; training {train:.2f} s of {sec:.2f} s per task) | | | |")
        in_context = [r["answers"][0] == r["gold"] for r in base]
        for name, got in ((f"TTT {s}", [r["answers"][0] == r["gold"] for r in tuned]),
                          (f"TTT {s} + vote", [vote(r["answers"]) == r["gold"] for r in tuned])):
            print(f"|   {paired_test(got, in_context).sentence(name, 'in context')} | | | |")
        by = {}
        for b, t in zip(base, tuned):
            c = by.setdefault(b["composition"], [0, 0, 0])
            c[0] += b["answers"][0] == b["gold"]
            c[1] += vote(t["answers"]) == t["gold"]
            c[2] += 1
        print("|   by composition (in context -> TTT + vote): " + ", ".join(
            f"{k} {a}->{t}/{n}" for k, (a, t, n) in sorted(by.items())) + " | | | |")


if __name__ == "__main__":
    main()

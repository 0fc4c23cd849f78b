"""The lab pair's targets table (issue 8), measured on the built-in evaluation problems (seed 0,
which training never sees): greedy accuracy per level, pass@k / majority@k / weighted best-of-k with
the lab PRM from one set of k samples, beam search vs best-of-N at equal generated tokens, the PRM's
step-level AUC against exact step labels, and batched generation speed.

Everything is plain functions returning numbers, so bench/lab.py, the model card and the tests share
them; `format_table` prints them.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from reasoning.answers import extract_answer, is_equiv
from reasoning.config import SearchConfig
from reasoning.problems import load_problems
from reasoning.tree import split_steps
from reasoning.types import DEFAULT_DELIMITER, Problem

from reasoning.lab import PRM_DIR, REASONER_DIR

MAX_NEW_TOKENS = 256  # a level-5 solution is up to ~200 tokens


def load_pair(reasoner: Path = REASONER_DIR, prm: Path = PRM_DIR, batch_rows: int = 128, checker: bool = True):
    """(LanguageModel, Verifier) of the lab pair through the app's own loaders, as `--model lab
    --verifier prm:lab` get them (a folder other than the committed one is loaded the same way).
    `checker=False` scores with the PRM alone, without its arithmetic checker."""
    from reasoning.backends import load_model
    from reasoning.verifiers.prm import load_prm

    lm = load_model("lab" if Path(reasoner) == REASONER_DIR else str(reasoner))
    lm.max_batch_rows = batch_rows  # the model is tiny: wide batches are what make it fast
    verifier = load_prm("lab" if Path(prm) == PRM_DIR else f"{prm}@math-shepherd", checker=checker)
    verifier.max_batch_rows = batch_rows
    return lm, verifier


@dataclass
class Path_:
    steps: list[str]
    answer: str | None
    correct: bool
    tokens: int
    scores: list[float] = field(default_factory=list)


def _path(problem: Problem, text: str, tokens: int) -> Path_:
    steps = [s.text for s in split_steps(text, DEFAULT_DELIMITER)]
    found = extract_answer(text, allow_fallback=False)
    return Path_(steps, found.value, found.found and is_equiv(found.value, problem.answer), tokens)


def generate(lm, problems: list[Problem], n: int, temperature: float, seed: int = 0) -> list[list[Path_]]:
    """n paths per problem, in batches of whole problems."""
    per_call = max(1, 256 // n)
    out = []
    for start in range(0, len(problems), per_call):
        batch = problems[start:start + per_call]
        rows = lm.complete([lm.prompt(p.question) for p in batch], n=n, max_new_tokens=MAX_NEW_TOKENS,
                           temperature=temperature, seed=seed + start)
        out += [[_path(p, c.text, c.n_tokens) for c in row] for p, row in zip(batch, rows)]
    return out


def score_paths(verifier, problems: list[Problem], paths: list[list[Path_]]) -> None:
    for problem, row in zip(problems, paths):
        scores = verifier.score(problem.question, [p.steps for p in row])
        for p, s in zip(row, scores):
            p.scores = s


def at_k(problems: list[Problem], paths: list[list[Path_]], k: int) -> dict[str, float]:
    """pass@k, maj@k and weighted best-of-k (last-step PRM score) from the estimators module."""
    from reasoning.estimators import ProblemSamples, Sample, per_problem_accuracy

    data = [ProblemSamples(p.key, [Sample(x.answer, x.correct, x.scores[-1] if x.scores else 0.0, x.tokens)
                                   for x in row], p.difficulty) for p, row in zip(problems, paths)]
    matrices = per_problem_accuracy(data, ks=[k], estimators=("pass", "maj", "wbon"), n_draws=100)
    return {name: float(m[:, 0].mean()) for name, m in matrices.items()}


def step_auc(problems: list[Problem], paths: list[list[Path_]]) -> tuple[float | None, int]:
    """ROC AUC of the PRM's step scores against exact step labels (prm.step_labels), over all steps;
    None when every step is right or every step is wrong."""
    from reasoning.estimators import roc_auc
    from reasoning.lab.prm import step_labels

    scores, labels = [], []
    for problem, row in zip(problems, paths):
        for p in row:
            if p.steps:
                labels += step_labels(problem, p.steps)
                scores += p.scores
    return roc_auc(scores, labels), len(labels)


def run_strategy(name: str, problems: list[Problem], lm, verifier, **settings) -> tuple[float, float, float]:
    """(accuracy, generated tokens per problem, seconds per problem) of a repo strategy."""
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.tree import Tree

    search = get_strategy(name)
    cfg = SearchConfig(max_new_tokens=MAX_NEW_TOKENS, **settings)
    right, tokens, started = 0, 0, time.time()
    for problem in problems:
        tree = Tree(problem.question)
        outcome = search(problem, lm, verifier, cfg, tree)
        right += bool(outcome.answer is not None and is_equiv(outcome.answer, problem.answer))
        tokens += sum(node.tokens for node in tree.nodes)
    return right / len(problems), tokens / len(problems), (time.time() - started) / len(problems)


def throughput(lm, rows: int = 64, level: int = 3) -> float:
    """Generated tokens per second, sampling `rows` solutions in one batch."""
    problems = load_problems(f"arith:{level}", limit=rows // 16 or 1)
    started = time.time()
    out = lm.complete([lm.prompt(p.question) for p in problems], n=16, max_new_tokens=MAX_NEW_TOKENS,
                      temperature=1.0, seed=0)
    return sum(c.n_tokens for row in out for c in row) / (time.time() - started)


def evaluate(lm, verifier, per_level: int = 50, sample_per_level: int | None = None, k: int = 16,
             temperature: float = SearchConfig.temperature, sample_levels=(1, 2, 3, 4, 5), beam_levels=(3, 4), beam_ns=(2, 4, 8),
             beam_problems: int = 20, record: Path | None = None, log=print) -> dict:
    """Every number of the targets table: greedy on `per_level` problems per level; k samples on
    `sample_per_level` (default: the same) of them; beam search vs best-of-N on `beam_problems`.
    `record` saves the samples for the Learn page's budget lesson. The temperature is the CLI's default
    (SearchConfig), so the table says what `run --strategy best_of_n` gets."""
    sample_per_level = sample_per_level or per_level
    report: dict = {"per_level": per_level, "sample_per_level": sample_per_level, "k": k,
                    "temperature": temperature, "levels": {}, "beam": {}, "beam_problems": beam_problems}
    all_problems, all_paths, recorded = [], [], {}
    for level in range(1, 6):
        problems = load_problems(f"arith:{level}", limit=per_level)
        row: dict = {"greedy": sum(p.correct for [p] in generate(lm, problems, 1, 0.0)) / len(problems)}
        if level in sample_levels:
            problems = problems[:sample_per_level]
            paths = generate(lm, problems, k, temperature, seed=level * 1000)
            score_paths(verifier, problems, paths)
            row.update(at_k(problems, paths, k))
            row["tokens_per_sample"] = sum(p.tokens for r in paths for p in r) / (k * len(problems))
            all_problems += problems
            all_paths += paths
            recorded[level] = [{"key": p.key, "samples": [[x.answer, x.correct, round(x.scores[-1] if x.scores else 0.0, 4),
                                                            x.tokens] for x in r]} for p, r in zip(problems, paths)]
        report["levels"][level] = row
        log(f"level {level}: " + ", ".join(f"{a} {b:.3f}" for a, b in row.items()))
    report["step_auc"], report["auc_steps"] = step_auc(all_problems, all_paths)
    if record is not None:
        Path(record).write_text(json.dumps({"n": k, "temperature": temperature, "per_level": sample_per_level,
                                            "levels": recorded}))
    for level in beam_levels:
        problems = load_problems(f"arith:{level}", limit=beam_problems)
        for n in beam_ns:
            bon = run_strategy("best_of_n", problems, lm, verifier, n=n, temperature=temperature)
            beam = run_strategy("beam_search", problems, lm, verifier, n=n, beam_width=min(2, n),
                                temperature=temperature)
            report["beam"][(level, n)] = {"best_of_n": bon, "beam_search": beam}
            log(f"level {level} N={n}: best-of-N {bon[0]:.2f} ({bon[1]:.0f} tok), "
                f"beam {beam[0]:.2f} ({beam[1]:.0f} tok, {beam[2]:.1f} s)")
    problems = load_problems("arith:3", limit=5)
    report["beam16_seconds"] = run_strategy("beam_search", problems, lm, verifier, n=16, beam_width=4,
                                            temperature=temperature)[2]
    report["tokens_per_second"] = throughput(lm)
    return report


def format_table(report: dict) -> str:
    k = report["k"]
    lines = [f"Lab pair on built-in problems (seed 0): greedy on {report['per_level']} per level, "
             f"{k} samples at T={report['temperature']} on {report['sample_per_level']} per level",
             f"{'level':>5} {'greedy':>7} {f'pass@{k}':>8} {f'maj@{k}':>7} {f'wbon@{k}':>8} {'tok/sample':>10}"]
    for level, row in report["levels"].items():
        cells = [f"{100 * row[key]:.0f}%" if key in row else "-" for key in ("greedy", "pass", "maj", "wbon")]
        tokens = f"{row['tokens_per_sample']:.0f}" if "tokens_per_sample" in row else "-"
        lines.append(f"{level:>5} {cells[0]:>7} {cells[1]:>8} {cells[2]:>7} {cells[3]:>8} {tokens:>10}")
    auc = "n/a" if report["step_auc"] is None else f"{report['step_auc']:.3f}"
    lines.append(f"PRM step AUC vs exact labels: {auc} over {report['auc_steps']} steps")
    if report["beam"]:
        lines.append(f"beam search (M=2) vs weighted best-of-N, {report['beam_problems']} problems: "
                     "accuracy (generated tokens/problem)")
        for (level, n), row in report["beam"].items():
            bon, beam = row["best_of_n"], row["beam_search"]
            lines.append(f"  level {level} N={n}: best-of-N {100 * bon[0]:.0f}% ({bon[1]:.0f} tok)   "
                         f"beam {100 * beam[0]:.0f}% ({beam[1]:.0f} tok)")
    lines.append(f"level-3 beam search N=16 (M=4): {report['beam16_seconds']:.1f} s per problem")
    lines.append(f"batched generation: {report['tokens_per_second']:.0f} tokens/s")
    return "\n".join(lines)

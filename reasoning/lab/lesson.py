"""The computations behind the Learn page, free of Streamlit: one problem answered greedily and by
many samples, the votes, the PRM's view of every step next to the exact check, a beam search tree,
and accuracy-vs-budget points by difficulty from recorded samples."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from reasoning.answers import majority
from reasoning.types import Problem

from reasoning.lab import MODELS_DIR

SAMPLES_FILE = MODELS_DIR / "lesson_samples.json"


@dataclass
class Attempt:
    """One solution path with what each judge thinks of it."""

    steps: list[str]
    answer: str | None
    correct: bool
    tokens: int
    prm: list[float] = field(default_factory=list)  # the lab PRM's score of each step
    truth: list[bool] = field(default_factory=list)  # the exact check of each step (prm.step_labels)
    checks: list[float] = field(default_factory=list)  # the PRM's arithmetic checker on each step alone

    @property
    def score(self) -> float:
        return self.prm[-1] if self.prm else 0.0


def attempts(lm, verifier, problem: Problem, n: int, temperature: float, seed: int) -> list[Attempt]:
    """n paths (one greedy when temperature is 0), scored by the PRM and by the exact check."""
    from reasoning.lab.evaluate import generate
    from reasoning.lab.prm import step_labels

    [row] = generate(lm, [problem], n, temperature, seed)
    scores = verifier.score(problem.question, [p.steps for p in row]) if verifier else [[] for _ in row]
    checker = getattr(verifier, "checker", None)
    checks = checker.step_checks([p.steps for p in row]) if checker else [[] for _ in row]
    return [Attempt(p.steps, p.answer, p.correct, p.tokens, s, step_labels(problem, p.steps) if p.steps else [], c)
            for p, s, c in zip(row, scores, checks)]


def votes(paths: list[Attempt], weighted: bool = False) -> list[tuple[str, float, bool]]:
    """(answer, votes or summed PRM score, right?) per class of equivalent answers (the strategies'
    vote, reasoning.answers.majority), most votes first; an answer is named by its first wording."""
    _, table = majority([p.answer for p in paths], [p.score if weighted else 1.0 for p in paths])
    right = {}
    for p in paths:
        right.setdefault(p.answer, p.correct)
    return sorted(((answer, total, right[answer]) for answer, total in table.items()), key=lambda row: -row[1])


def winner(paths: list[Attempt], weighted: bool = False) -> tuple[str | None, bool]:
    table = votes(paths, weighted)
    return (table[0][0], table[0][2]) if table else (None, False)


def fooled(paths: list[Attempt]) -> list[dict]:
    """Steps where the PRM and the exact check disagree most: confident on a wrong step, or
    doubting a right one. Largest disagreement first."""
    rows = []
    for i, p in enumerate(paths):
        for j, (score, ok) in enumerate(zip(p.prm, p.truth)):
            miss = (1 - score) if ok else score
            if miss > 0.5:
                rows.append({"sample": i + 1, "step": j + 1, "text": p.steps[j], "PRM score": round(score, 2),
                             "exact check": "right" if ok else "wrong", "disagreement": round(miss, 2)})
    return sorted(rows, key=lambda r: -r["disagreement"])


class _Seeded:
    """The model with every call seeded from `seed` and the call's index (backends.call_seed), so a
    lesson draws the same tree each time it is shown."""

    def __init__(self, lm, seed: int):
        self.lm, self.seed, self.calls = lm, seed, 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def complete(self, prompts, n, max_new_tokens, temperature, stop=None, seed=None, top_p=1.0):
        from reasoning.backends import call_seed

        seed, self.calls = call_seed(self.seed, self.calls) if seed is None else seed, self.calls + 1
        return self.lm.complete(prompts, n=n, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop,
                                seed=seed, top_p=top_p)


def beam_tree(lm, verifier, problem: Problem, n: int = 8, beam_width: int = 2, temperature: float = 1.0,
              seed: int = 0):
    """A PRM-guided beam search on the problem, seeded: (nodes in creation order, outcome)."""
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.tree import Tree

    from reasoning.lab.evaluate import MAX_NEW_TOKENS

    tree = Tree(problem.question)
    cfg = SearchConfig(n=n, beam_width=beam_width, temperature=temperature, max_new_tokens=MAX_NEW_TOKENS)
    outcome = get_strategy("beam_search")(problem, _Seeded(lm, seed), verifier, cfg, tree)
    return tree.nodes, outcome


# --- recorded samples for the budget lesson (written by evaluate(record=SAMPLES_FILE)) -------------

def budget_points(path: Path = SAMPLES_FILE, ks=None):
    """Accuracy at each k for majority, weighted best-of-k with the PRM and pass@k (coverage),
    by difficulty (reasoning.estimators.curve_points), from the recorded samples."""
    from reasoning.estimators import ProblemSamples, Sample, curve_points

    from reasoning.estimators import default_ks

    recorded = json.loads(Path(path).read_text())
    ks = ks or default_ks(recorded["n"])
    problems = [ProblemSamples(f"{level}:{row['key']}", [Sample(a, c, s, t) for a, c, s, t in row["samples"]],
                               int(level))
                for level, rows in recorded["levels"].items() for row in rows]
    points = curve_points(problems, ks=list(ks), estimators=("pass", "maj", "wbon"), n_draws=100, n_boot=200,
                          by=lambda p: p.difficulty)
    # who wrote and scored the samples, for the figure's hover
    return recorded, [replace(p, model="lab reasoner", verifier="prm:lab" if p.estimator == "wbon" else None,
                              dataset=f"arith:{p.group}") for p in points]


def best_method(points, estimators=("maj", "wbon")) -> dict[int, dict[int, str]]:
    """The compute-optimal choice per difficulty and budget k among real methods (pass@k is an oracle)."""
    best: dict[int, dict[int, tuple[float, str]]] = {}
    for p in points:
        if p.estimator in estimators:
            current = best.setdefault(p.group, {}).get(p.k)
            if current is None or p.accuracy > current[0]:
                best[p.group][p.k] = (p.accuracy, p.estimator)
    return {g: {k: name for k, (_, name) in row.items()} for g, row in best.items()}


# --- thinking longer (the lab thinker) -----------------------------------------------------------------

@dataclass
class ThoughtView:
    text: str
    tokens: int
    turn: str | None
    failed: bool  # a check that found its step wrong
    forced: bool = False


@dataclass
class Trace:
    thoughts: list[ThoughtView]
    answer_text: str
    answer: str | None
    correct: bool
    think_tokens: int
    answer_tokens: int


def think_trace(lm, problem: Problem, think_tokens: int = 0, max_think_tokens: int = 0,
                check_again: bool = False) -> Trace:
    """The lab thinker's greedy answer to one problem, as thoughts (turns, failed checks, forced waits)
    and the answer after its thinking: the same chain cot stores. `check_again`: think once as it
    comes, then again with a minimum one token past that (budget forcing: its end of thinking becomes
    "Wait" once, which starts its pass of checks)."""
    from reasoning.config import SearchConfig
    from reasoning.strategies import get_strategy
    from reasoning.thinking import failed_check
    from reasoning.tree import Tree

    def chain(minimum: int):
        tree = Tree(problem.question)
        outcome = get_strategy("cot")(problem, lm, None, SearchConfig(max_new_tokens=256, think_tokens=minimum,
                                                                      max_think_tokens=max_think_tokens), tree)
        return outcome, tree.path(tree.nodes[outcome.node])

    outcome, path = chain(think_tokens)
    if check_again and not max_think_tokens:
        outcome, path = chain(max(think_tokens, path[-1].meta.get("think_tokens", 0) + 1))
    thoughts = [ThoughtView(n.text, n.tokens, n.meta.get("turn"), failed_check(n.text), bool(n.meta.get("forced")))
                for n in path if n.meta.get("phase") == "think"]
    leaf = path[-1]
    return Trace(thoughts, "\n\n".join(n.text for n in path if n.meta.get("phase") == "answer"), outcome.answer,
                 bool(leaf.correct), leaf.meta.get("think_tokens", 0), leaf.meta.get("answer_tokens", 0))


THINKING_BUDGETS = (16, 32, 64, 128, 256)


def thinking_points(lm, level: int, per_level: int, budgets=THINKING_BUDGETS, on_condition=None):
    """Accuracy against thinking tokens on the first `per_level` built-in problems of a level: no
    thinking, then thinking cut at each budget, then thinking as it comes (think_eval). Returns the
    budget points (x = thinking tokens) and the evaluation's points."""
    from reasoning.budget import BudgetPoint
    from reasoning.lab.think_eval import evaluate, wilson

    report = evaluate(lm, levels=(level,), per_level=per_level, maxima=tuple(budgets), minima=(), batch=per_level,
                      log=on_condition or (lambda line: None))
    points = []
    for p in report.points:
        if p.condition == "no-think":
            continue
        low, high = wilson(p.correct, p.total)
        curve = "thinking as it comes" if p.condition == "natural" else "thinking cut at T tokens"
        points.append(BudgetPoint(curve=curve, strategy="cot", estimator="direct", k=1, tokens_per_problem=p.tokens,
                                  accuracy=p.accuracy, ci_low=low, ci_high=high, n_problems=p.total,
                                  model="lab-think", dataset=f"arith:{level}", think_tokens=max(p.think_tokens, 1.0)))
    return points, report.points


# --- scale what? (the lab ladder) -------------------------------------------------------------------


def ladder_exchange(small_lm, large_lm, verifier, small_key: str, large_key: str, levels=(2, 3, 4, 5),
                    per_level: int = 16, n: int = 8, on_level=None):
    """Measured live: the smaller model's n samples per problem (T=0.8, scored by the PRM: majority and
    weighted best-of-k for k <= n) and the larger model's greedy answer, on the first `per_level`
    built-in problems of each level; then the FLOPs-matched exchange (reasoning/scale.py). Returns
    (exchanges, small points, large greedy points)."""
    import numpy as np

    from reasoning.budget import BudgetPoint, flops
    from reasoning.estimators import ProblemSamples, Sample, bootstrap_ci, curve_points, default_ks
    from reasoning.lab.evaluate import generate
    from reasoning.problems import generate_arith
    from reasoning.scale import exchange, ladder_model

    small, large = ladder_model(small_key), ladder_model(large_key)
    samples, greedy = [], []
    for level in levels:
        problems = generate_arith(level, per_level, seed=0)
        for problem, row in zip(problems, generate(small_lm, problems, n, 0.8, seed=1)):
            scores = verifier.score(problem.question, [p.steps for p in row])
            samples.append(ProblemSamples(f"{level}:{problem.key}", [
                Sample(p.answer, p.correct, s[-1] if s else 0.0, p.tokens) for p, s in zip(row, scores)], level))
        answers = [row[0] for row in generate(large_lm, problems, 1, 0.0, seed=1)]
        right = np.array([float(a.correct) for a in answers])
        tokens = float(np.mean([a.tokens for a in answers]))
        low, high = bootstrap_ci(right, n_boot=200)
        greedy.append(BudgetPoint(curve=f"{large_key} greedy", strategy="cot", estimator="direct", k=1,
                                  tokens_per_problem=tokens, flops=flops(large_lm.n_params, tokens, None, 0, 0)[0],
                                  accuracy=float(right.mean()), ci_low=low, ci_high=high, group=level,
                                  n_problems=len(problems), model=large_key, dataset=f"arith:{level}"))
        if on_level:
            on_level(level)
    raw = curve_points(samples, ks=default_ks(n), estimators=("maj", "wbon"), n_draws=100, n_boot=200,
                       by=lambda p: p.difficulty)
    verifier_params = getattr(verifier, "n_params", 0)
    points = [replace(p, model=small_key, dataset=f"arith:{p.group}",
                      flops=flops(small_lm.n_params, p.tokens_per_problem, "prm:lab" if p.estimator == "wbon" else None,
                                  verifier_params, p.tokens_per_problem)[0])
              for p in raw]
    return exchange(points, greedy, small, large), points, greedy

"""Measure the lab thinker (model card, bench/thinking.py): greedy accuracy per level with no thinking,
with thinking as it comes, and under thinking budgets — a maximum (thinking cut and closed at T) and a
minimum (the end of thinking replaced by "Wait" until T) — with the thinking tokens each spent; the
log-linear fit of accuracy on log2(thinking tokens); batched generation speed.

Every condition is one batched call over a level's problems through the same ThinkingBudget the
strategies use (reasoning/thinking_budget.py), so the numbers are what `run --strategy cot
--model lab-think --max-think-tokens T` gives.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from reasoning.answers import extract_answer, is_equiv
from reasoning.budget import loglinear_fit as budget_fit
from reasoning.problems import load_problems
from reasoning.thinking import split_thinking
from reasoning.thinking_budget import Budget, ThinkingBudget

MAX_NEW_TOKENS = 1024  # the answer after thinking (and thinking past a minimum)


@dataclass
class Point:
    level: int
    condition: str  # "no-think", "natural", "max T", "min T"
    budget: int | None
    correct: int
    total: int
    think_tokens: float  # mean thinking tokens per problem
    tokens: float  # mean generated tokens per problem
    seconds: float
    waits: float = 0.0  # mean forced "Wait"s

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


@dataclass
class Report:
    points: list[Point] = field(default_factory=list)
    tokens_per_second: float = 0.0


def conditions(maxima: tuple[int, ...], minima: tuple[int, ...]) -> list[tuple[str, int | None, Budget]]:
    out = [("no-think", None, Budget(think=False)), ("natural", None, Budget())]
    out += [(f"max {t}", t, Budget(maximum=t)) for t in maxima]
    out += [(f"min {t}", t, Budget(minimum=t, maximum=t)) for t in minima]
    return out


def evaluate(lm, levels=(4, 5), per_level: int = 200, maxima=(16, 32, 64, 128, 256), minima=(384, 512, 768),
             batch: int = 50, log=print) -> Report:
    """Greedy, seed-0 built-in problems (held out from training: data.py skips them)."""
    report = Report()
    generated, spent = 0, 0.0
    for level in levels:
        problems = load_problems(f"arith:{level}", limit=per_level, seed=0)
        for name, budget_t, budget in conditions(maxima, minima):
            started = time.perf_counter()
            correct, think, tokens, waits = 0, 0, 0, 0
            for i in range(0, len(problems), batch):
                chunk = problems[i:i + batch]
                rows = ThinkingBudget(lm, budget).complete([lm.prompt(p.question) for p in chunk], n=1,
                                                           max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)
                for p, [c] in zip(chunk, rows):
                    split = split_thinking(c.text)
                    found = extract_answer(split.answer if split.thinking is not None else c.text)
                    correct += bool(found.found and is_equiv(found.value, p.answer))
                    tokens += c.n_tokens
                    think += _think_tokens(c, split)
                    waits += sum(1 for _, kind in c.inserted if kind == "wait")
            seconds = time.perf_counter() - started
            generated, spent = generated + tokens, spent + seconds
            n = len(problems)
            point = Point(level, name, budget_t, correct, n, think / n, tokens / n, seconds, waits / n)
            report.points.append(point)
            log(f"level {level} {name:>9}: {correct}/{n} = {100 * point.accuracy:5.1f}%  thinking {point.think_tokens:6.1f}"
                f"  tokens {point.tokens:6.1f}  waits {point.waits:.2f}  {seconds:5.1f} s")
    report.tokens_per_second = generated / spent if spent else 0.0
    return report


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95%)."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _think_tokens(c, split) -> int:
    if split.thinking is None or not c.token_ends:
        return 0
    end = split.thinking_start + len(split.thinking)
    return sum(1 for e in c.token_ends if e <= end)


def loglinear_fit(points: list[Point]) -> tuple[float, float, float]:
    """Slope of accuracy on log2(mean thinking tokens) over the budgeted points with its 95% CI
    (reasoning.budget.loglinear_fit): (slope, low, high) in accuracy per doubling of thinking."""
    fit = budget_fit([(p.think_tokens, p.correct, p.total) for p in points if p.budget is not None])
    return (float("nan"),) * 3 if fit is None else fit[:3]


def parallel_points(lm, level: int, per_level: int, n: int = 8, temperature: float = 0.8, seed: int = 0,
                    think: bool = False) -> list[tuple[int, float, float]]:
    """Snell's other half at the same tokens: n samples per problem (no thinking unless `think`), and
    majority@k for k = 1, 2, 4 .. n with the tokens k samples cost: [(k, accuracy, tokens per problem)]."""
    from reasoning.estimators import maj_at_k

    problems = load_problems(f"arith:{level}", limit=per_level, seed=0)
    rows = ThinkingBudget(lm, Budget(think=think)).complete([lm.prompt(p.question) for p in problems], n=n,
                                                          max_new_tokens=MAX_NEW_TOKENS, temperature=temperature,
                                                          seed=seed)
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= n]
    out = []
    for k in ks:
        acc, tokens = 0.0, 0.0
        for p, row in zip(problems, rows):
            answers = []
            for c in row:
                split = split_thinking(c.text)
                found = extract_answer(split.answer if split.thinking is not None else c.text)
                answers.append(found.value if found.found else None)
            graded = {a: is_equiv(a, p.answer) for a in answers if a is not None}
            acc += maj_at_k(answers, graded, k)
            tokens += k * sum(c.n_tokens for c in row) / len(row)
        out.append((k, acc / len(problems), tokens / len(problems)))
    return out


def format_table(report: Report) -> str:
    lines = ["| level | thinking | accuracy (95% CI) | thinking tokens | tokens | waits |", "|---|---|---|---|---|---|"]
    for p in report.points:
        low, high = wilson(p.correct, p.total)
        lines.append(f"| {p.level} | {p.condition} | {100 * p.accuracy:.1f}% ({100 * low:.0f}-{100 * high:.0f}) "
                     f"| {p.think_tokens:.0f} | {p.tokens:.0f} | {p.waits:.2f} |")
    for level in sorted({p.level for p in report.points}):
        slope, low, high = loglinear_fit([p for p in report.points if p.level == level])
        lines.append(f"\nlevel {level}: accuracy per doubling of thinking tokens {100 * slope:+.1f} points "
                     f"(95% CI {100 * low:+.1f} to {100 * high:+.1f})")
    lines.append(f"batched generation: {report.tokens_per_second:.0f} tokens/s")
    return "\n".join(lines)

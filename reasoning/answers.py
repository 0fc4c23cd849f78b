"""Final answers: pull one out of a model's text, decide when two answers are the same, and vote.

Extraction trusts explicit markers before guesses (boxed > "the answer is" > GSM8K's `####`), and a
last-number guess is flagged so accuracy can be reported with and without it. What it returns, and
what a run stores and grades, is the final value (a number, a \\boxed{} expression, a short
expression), never a whole line of a free-form model's arithmetic (`_final_value`). Equivalence is exact
for plain numbers (cheap, and voting compares many) and falls back to math-verify for everything
else (fractions in LaTeX, expressions, intervals).
"""
from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from reasoning.grids import extract_grid_answer, is_grid_text

BOXED, ANSWER_IS, GSM8K, LAST_NUMBER, NONE = "boxed", "answer_is", "gsm8k", "last_number", "none"
TASK = "task"

# A plain number as people write it: thousands commas, optional sign, decimals or a simple fraction.
_INTEGER = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_NUMBER = rf"[+-]?(?:{_INTEGER}/\d+|{_INTEGER}(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(_NUMBER)
_LATEX_FRACTION_RE = re.compile(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}")
# Words, \text{...} or % after a number are units ("42 apples", "5 \text{ cm}", "50%"): dropped,
# for numbers only, since GSM8K-style golds are bare numbers.
_NUMBER_WITH_UNITS_RE = re.compile(
    rf"({_NUMBER})\s*(?:\\?%|°)?(?:\s*\\(?:text|mbox|mathrm)\{{[^{{}}]*\}}|\s+[A-Za-z][A-Za-z ]*…?)*")
_ANSWER_IS_RE = re.compile(r"\b(?:final\s+)?answer\s+is\b:?", re.IGNORECASE)
# The answer after the marker runs to the end of its sentence: a period that is not a decimal point
# nor part of an ellipsis ("180 - 3 = ... = 90").
_SENTENCE_RE = re.compile(r"\s*([^\n]*?)(?=(?<!\.)\.(?=\s|$)|$)", re.MULTILINE)
_GSM8K_RE = re.compile(r"####\s*(.*?)\s*$", re.MULTILINE)
# Last-number fallback: a minus sign counts only when it is not a subtraction ("10-3").
_LAST_NUMBER_RE = re.compile(rf"(?<![\w)\]])-?(?:{_INTEGER}/\d+|{_INTEGER}(?:\.\d+)?)")
_TEXT_MACRO_RE = re.compile(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}")
# A word of prose in a marked answer (LaTeX commands such as \\frac or \\pi are not words).
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_LATEX_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_LETTER_RE = re.compile(r"[A-Za-z]")
_PROSE_WORDS = 3  # "that she has 5 apples left" is prose; "x + 1", "\\text{Evelyn}", "y = 2x + 3" are not
_SPACING_RE = re.compile(r"\\[,;:! ]|\\(?:left|right)(?![a-zA-Z])|\s+")

_MATH_VERIFY_TIMEOUT_S = 5


@dataclass(frozen=True)
class Extracted:
    """The answer found in a text and how it was found. `value` None means no answer: a normal
    outcome (a truncated or rambling sample), never an error."""

    value: str | None
    method: str  # boxed | answer_is | gsm8k | last_number | none

    @property
    def found(self) -> bool:
        return self.value is not None

    @property
    def flagged(self) -> bool:
        """True for the last-number guess: the model never marked an answer, we picked one."""
        return self.method == LAST_NUMBER


# The answer extractors a run can grade with (its `extractor` knob; a benchmark's own in
# reasoning.problems.SHIPPED): the markers each trusts, in order, and whether a last-number guess
# (flagged) follows when no marker is found.
STANDARD = "standard"
EXTRACTORS: dict[str, tuple[tuple[str, ...], bool]] = {
    STANDARD: ((BOXED, ANSWER_IS, GSM8K), True),  # any marker, then the last number
    "math": ((BOXED, ANSWER_IS), True),  # MATH-style (search-and-learn's Qwen2.5-Math parser order)
    "gsm8k": ((GSM8K, ANSWER_IS, BOXED), True),  # GSM8K's "#### N" first
    "boxed": ((BOXED,), False),  # strict: the last \\boxed{} or no answer
    TASK: ((), False),  # a task with demonstrations (reasoning/fewshot.py): its first grid, else its first line
}


def extract_answer(text: str, allow_fallback: bool = True, extractor: str = STANDARD) -> Extracted:
    """The final answer of `text`, by the first method of `extractor` (EXTRACTORS) that finds one; the
    standard one tries the last \\boxed{...}, the last "the (final) answer is X", the last "#### X",
    and (if allowed) the last number."""
    if extractor == TASK:  # the problem's own format decides where one is known (strategies.chains.finish)
        value = extract_grid_answer(text) or (text.split("\n\n")[0].strip() or None)
        return Extracted(value, TASK if value else NONE)
    markers, fallback = EXTRACTORS[extractor]
    finders = {BOXED: _last_boxed, ANSWER_IS: _last_answer_is, GSM8K: _last_gsm8k}
    allow_fallback = allow_fallback and fallback
    for method in markers:
        found = finders[method](text) or ""
        value = _clean(found) if method == BOXED else _final_value(found)
        if value:
            return Extracted(value, method)
    numbers = _LAST_NUMBER_RE.findall(text) if allow_fallback else []
    if numbers:
        return Extracted(_clean(numbers[-1]), LAST_NUMBER)
    return Extracted(None, NONE)


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} whose braces close, nested braces included."""
    start = text.rfind("\\boxed{")
    while start != -1:
        open_at = start + len("\\boxed{")
        depth = 1
        for i in range(open_at, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                content = text[open_at:i].strip()
                if content:
                    return content
                break
        start = text.rfind("\\boxed{", 0, start)
    return None


def _last_answer_is(text: str) -> str | None:
    for marker in reversed(list(_ANSWER_IS_RE.finditer(text))):
        value = _SENTENCE_RE.match(text, marker.end()).group(1).strip()
        if value.strip("$ "):
            return value
    return None


def _last_gsm8k(text: str) -> str | None:
    values = [v for v in _GSM8K_RE.findall(text) if v]
    return values[-1] if values else None


def _clean(value: str) -> str:
    """Drop what is not the answer itself: math/currency `$`, a final period, thousands commas and
    unit words after a number. Anything that is not a number keeps its words."""
    value = value.strip().replace("\\$", "$").strip("$ ").rstrip(".").strip()
    number = _NUMBER_WITH_UNITS_RE.fullmatch(value)
    if number:
        return number.group(1).replace(",", "")
    return value


def _final_value(sentence: str) -> str | None:
    """The value a marked sentence ("the answer is ...", "#### ...") ends on, never the sentence: a
    free-form model writes "The answer is 180 - 3 = 177 = 90 degrees." and the stored answer must be
    90, not the line of arithmetic (which math-verify would also have graded by the number inside).
    - a number (units dropped) is the value;
    - a chain of arithmetic ending on a number gives that number ("... = 90 degrees" -> 90), while
      an equation in unknowns stays whole ("5x - 7y + 4 = 0");
    - prose (a few words) gives its last number ("that she has 5 apples left" -> 5), or no answer;
    - anything else is an expression and stays whole ("y = 2x + 3", "\\frac{\\pi}{2}", "(3, 4)")."""
    value = _clean(sentence)
    if not value or _NUMBER_RE.fullmatch(value):
        return value or None
    if "=" in value:
        sides, last = value.rsplit("=", 1)
        last = _clean(last)
        if _NUMBER_RE.fullmatch(last) and not _LETTER_RE.search(_LATEX_COMMAND_RE.sub(" ", _TEXT_MACRO_RE.sub(" ", sides))):
            return last  # arithmetic ("3 * 4 = 12"), not an equation in unknowns ("5x - 7y + 4 = 0")
    if len(_WORD_RE.findall(_TEXT_MACRO_RE.sub(" ", value))) >= _PROSE_WORDS:
        numbers = _LAST_NUMBER_RE.findall(value)
        return _clean(numbers[-1]) if numbers else None
    return value


def _as_fraction(text: str) -> Fraction | None:
    """The exact value of a plain number ("1,000", "+3", "2.50", "3/4", "\\frac{3}{4}"), else None."""
    latex = _LATEX_FRACTION_RE.fullmatch(text)
    if latex:
        sign, num, den = latex.groups()
        text = f"{sign}{num}/{den}"
    if not _NUMBER_RE.fullmatch(text):
        return None
    try:
        return Fraction(text.replace(",", ""))
    except ZeroDivisionError:
        return None


def _normalise(value: str) -> str:
    """Spelling differences that never change meaning: spacing, `$`, \\text{}, \\dfrac."""
    value = _TEXT_MACRO_RE.sub(r"\1", value.replace("\\$", "").replace("$", ""))
    value = re.sub(r"\\[dt]frac", r"\\frac", value)
    return _SPACING_RE.sub("", value).rstrip(".")


def canonical(value: str | None) -> str | None:
    """A cheap key under which equal answers usually meet. Numbers become their reduced exact form:
    an integer ("1,000" -> "1000", "+12.0" -> "12") or a reduced fraction p/q ("0.5", "2/4" and
    "\\frac{1}{2}" -> "1/2"); fractions rather than decimals because every decimal has an exact
    fraction but not the other way round (1/3). Other answers are only normalised (see _normalise)."""
    if value is None:
        return None
    if is_grid_text(value):
        return value  # a grid compares cell for cell ("0120\n" is not "120\n")
    text = _normalise(value)
    number = _as_fraction(text)
    if number is None:
        return text
    return str(number.numerator) if number.denominator == 1 else f"{number.numerator}/{number.denominator}"


def is_equiv(a: str | None, b: str | None) -> bool:
    """Whether answer `a` means the same as answer `b` (`b` is taken as the reference, as in
    is_equiv(predicted, gold)). A missing answer is never equivalent, not even to another missing
    one. Two plain numbers compare exactly; anything else goes to math-verify, whose failures count
    as "not equivalent" rather than errors."""
    if a is None or b is None:
        return False
    if is_grid_text(a) or is_grid_text(b):
        return a == b  # grids (reasoning/grids.py) are equal cell for cell, never "numerically"
    key_a, key_b = canonical(a), canonical(b)
    if key_a == key_b:
        return True
    if _as_fraction(key_a) is not None and _as_fraction(key_b) is not None:
        return False  # keys are reduced exact forms: different keys, different numbers
    from math_verify import verify  # imported here: it pulls in sympy (~0.5 s), which plain numbers never need
    from math_verify.errors import TimeoutException

    try:
        return bool(verify(list(_parse(b)), list(_parse(a)), timeout_seconds=_timeout()))
    except (Exception, TimeoutException):  # TimeoutException is a BaseException
        return False


@lru_cache(maxsize=4096)
def _parse(value: str) -> tuple:
    """math-verify's parse of one answer, wrapped as inline math; cached because voting and grading
    compare the same few answers over and over."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        math = value.replace("\\$", "").replace("$", "")
        return tuple(parse(f"${math}$", parsing_timeout=_timeout()))
    except (Exception, TimeoutException):
        return ()


def _timeout() -> int | None:
    """math-verify times out with signal.alarm, which only works in the main thread; elsewhere
    (Streamlit script threads, worker pools) it must run without a timeout or it raises."""
    return _MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def group_answers(values: list[str | None]) -> list[int | None]:
    """Equivalence class of each answer (None for no answer), classes numbered by first appearance.
    Answers sharing a canonical key share a class without any comparison; a new key is compared
    only with the representatives (first answers) of the classes so far, once per key, so voting
    over many samples costs a handful of math-verify calls."""
    representatives: list[str] = []
    class_of_key: dict[str, int] = {}
    classes: list[int | None] = []
    for value in values:
        if value is None:
            classes.append(None)
            continue
        key = canonical(value)
        if key not in class_of_key:
            match = next((i for i, rep in enumerate(representatives) if is_equiv(value, rep)), None)
            if match is None:
                match = len(representatives)
                representatives.append(value)
            class_of_key[key] = match
        classes.append(class_of_key[key])
    return classes


def answer_keys(answers: list[str | None], correct: list[bool | None]) -> list[str | None]:
    """One key per equivalence class of answers (group_answers; the first-seen text of a class,
    canonicalised, names it), for estimators that count votes by key. Should grading ever disagree
    inside a class (math-verify is not perfectly transitive), its right and wrong members get
    separate keys, so a vote never credits a wrong answer. Each distinct text is compared once:
    samples repeat a few answers many times."""
    distinct = list(dict.fromkeys(a for a in answers if a is not None))
    class_of = dict(zip(distinct, group_answers(distinct)))
    representative: dict[int, str] = {}
    for text in distinct:
        representative.setdefault(class_of[text], canonical(text))
    grades: dict[int, set] = {}
    for answer, ok in zip(answers, correct):
        if answer is not None:
            grades.setdefault(class_of[answer], set()).add(ok)
    keys: list[str | None] = []
    for answer, ok in zip(answers, correct):
        if answer is None:
            keys.append(None)
            continue
        cls = class_of[answer]
        keys.append(f"{representative[cls]}#{ok}" if len(grades[cls]) > 1 else representative[cls])
    return keys


def majority(values: list[str | None],
             weights: list[float] | None = None) -> tuple[str | None, dict[str, float]]:
    """The winning answer and the vote table {representative: votes (or summed weight)}.

    Representatives are the first-seen text of each class. Samples without an answer do not vote; if
    none has one the result is (None, {}). A tie goes to the class seen first, so the result is
    deterministic and favours the earliest sample (the greedy one, when a strategy puts it first)."""
    if weights is None:
        weights = [1.0] * len(values)
    if len(weights) != len(values):
        raise ValueError(f"majority: {len(values)} answers but {len(weights)} weights")
    representatives: dict[int, str] = {}
    votes: dict[int, float] = {}
    for value, cls, weight in zip(values, group_answers(values), weights):
        if cls is None:
            continue
        representatives.setdefault(cls, value)
        votes[cls] = votes.get(cls, 0.0) + float(weight)
    if not votes:
        return None, {}
    winner = max(votes, key=lambda cls: (votes[cls], -cls))
    return representatives[winner], {representatives[cls]: total for cls, total in votes.items()}


@dataclass(frozen=True)
class Vote:
    """The outcome of a vote: the winning answer (None when no ballot has one), the vote table
    {representative: votes or summed weight} and the index of the ballot chosen to carry the winner
    (None when there is no winner)."""

    winner: str | None
    table: dict[str, float]
    chosen: int | None


def vote(values: list[str | None], weights: list[float] | None = None,
         rank: Sequence | None = None) -> Vote:
    """The one vote every strategy and lesson uses: `majority` over equivalent answers (weighted when
    `weights` are given), then, among the ballots whose answer is equivalent to the winner, the one
    with the highest `rank` (any comparable keys, e.g. (path score, -seq); default: the weights, else
    all equal), the earliest on ties. The chosen ballot's own wording of the answer ("5.0" where the
    table says "5") is what a caller should report, so an outcome and the node it points at agree."""
    winner, table = majority(values, weights)
    if winner is None:
        return Vote(None, table, None)
    if rank is None:
        rank = weights if weights is not None else [0.0] * len(values)
    carriers = [i for i, value in enumerate(values) if value is not None and is_equiv(value, winner)]
    chosen = max(carriers, key=lambda i: (rank[i], -i))
    return Vote(winner, table, chosen)

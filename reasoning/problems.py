"""Problem sets: generated arithmetic word problems, the benchmarks shipped in `reasoning/data/`
(GSM8K's test set, MATH-500), JSONL files (GSM8K or MATH shape) and Hugging Face datasets, all
turned into `Problem`s by `load_problems(spec)`.

The generated problems are the embedded default: the difficulty is the number of operations, every
intermediate is a small non-negative integer, and each problem carries a regular one-operation-per-
step solution ("... so he has 5 + 3 = 8 apples.") that trains and labels the lab model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import math
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from reasoning import strict_json
from reasoning.answers import TASK, STANDARD, extract_answer
from reasoning.errors import UserError
from reasoning.types import Problem

MIN_DIFFICULTY, MAX_DIFFICULTY = 1, 5
DEFAULT_COUNT = 20
# Largest quantity (operand or running total) per difficulty: level 1 stays within 20.
_CAPS = {1: 20, 2: 50, 3: 100, 4: 200, 5: 500}
_MAX_FACTOR = 5  # multiplications and divisions use small factors only
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
# One operation of an arith solution step as written ("5 + 3 = 8"): how the lab reads its training
# solutions, labels steps, and how the arithmetic checker finds the equations to check.
EQUATION_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
_CONNECTORS = ("Then", "Later", "After that", "Next")

NAMES = (("Tom", "he"), ("Mia", "she"), ("Ravi", "he"), ("Lena", "she"), ("Omar", "he"),
         ("Sofia", "she"), ("Ben", "he"), ("Aiko", "she"), ("Diego", "he"), ("Grace", "she"),
         ("Noah", "he"), ("Priya", "she"), ("Lucas", "he"), ("Zoe", "she"), ("Kofi", "he"),
         ("Hana", "she"))
_PRONOUNS = {"he": ("he", "him", "his"), "she": ("she", "her", "her"), "it": ("it", "it", "its")}


@dataclass(frozen=True)
class _Theme:
    """One story world. Each operation has several phrasings, each a pair: the story sentence and
    the clause the solution step uses for it ("buys {b} more"). Placeholders: {Name}/{name} the
    subject, {Pron}/{pron}, {obj}, {Poss}/{poss} its pronouns, {a} the start, {b} the operand.
    Operation sentences never start with the subject's name, so a connector ("Then, ...") can
    lowercase their first letter."""

    unit: str
    subject: str | None  # None: a person from NAMES; else a fixed subject ("the train")
    starts: tuple[str, ...]
    ops: dict[str, tuple[tuple[str, str], ...]]
    questions: tuple[str, ...]


_THEMES = (
    _Theme("apples", None,
           ("{Name} picks {a} apples from the orchard.", "{Name} has a basket with {a} apples."),
           {"add": (("{Pron} buys {b} more apples at the market.", "buys {b} more"),
                    ("A neighbour gives {obj} {b} apples.", "gets {b} from a neighbour"),
                    ("{Pron} picks another {b} apples from a tree.", "picks another {b}")),
            "sub": (("{Pron} eats {b} of them.", "eats {b}"),
                    ("{Pron} gives {b} apples to a friend.", "gives {b} away"),
                    ("{b} of the apples are bruised, so {pron} throws them away.",
                     "throws away {b} bruised ones")),
            "mul": (("After a good harvest {pron} has {b} times as many apples as before.",
                     "ends up with {b} times as many after the harvest"),
                    ("{Pron} trades them at the fair for {b} times as many apples.",
                     "trades them for {b} times as many")),
            "div": (("{Pron} packs the apples equally into {b} bags and keeps only one bag.",
                     "packs them equally into {b} bags, keeping one"),)},
           ("How many apples does {name} have now?", "How many apples does {name} end up with?")),
    _Theme("coins", None,
           ("{Name} has {a} coins in a piggy bank.", "{Name} finds {a} coins under the sofa."),
           {"add": (("{Pron} earns {b} coins for helping at home.", "earns {b} more"),
                    ("{Poss} grandmother gives {obj} {b} coins.", "gets {b} from {poss} grandmother")),
            "sub": (("{Pron} spends {b} coins on a snack.", "spends {b}"),
                    ("{Pron} loses {b} coins on the way to school.", "loses {b}"),
                    ("{Pron} puts {b} coins into a charity box.", "gives {b} to charity")),
            "mul": (("A collector swaps {poss} coins for {b} times as many.",
                     "swaps them for {b} times as many"),),
            "div": (("{Pron} splits {poss} coins equally among {b} jars and takes one jar to the shop.",
                     "splits them equally among {b} jars, taking one"),)},
           ("How many coins does {name} have now?", "How many coins does {name} end up with?")),
    _Theme("books", None,
           ("{Name} has {a} books on a shelf.", "{Name} owns {a} books."),
           {"add": (("{Pron} buys {b} new books.", "buys {b} new ones"),
                    ("{Pron} receives {b} books as a birthday present.", "receives {b} as a present"),
                    ("{Poss} aunt sends {obj} a parcel with {b} books.", "gets {b} from {poss} aunt")),
            "sub": (("{Pron} donates {b} books to the school library.", "donates {b}"),
                    ("{Pron} lends {b} books to a classmate.", "lends out {b}")),
            "mul": (("{Pron} joins a book club and soon owns {b} times as many books as before.",
                     "soon owns {b} times as many"),),
            "div": (("{Pron} sorts the books into {b} equal piles and keeps just one pile.",
                     "sorts them into {b} equal piles, keeping one"),)},
           ("How many books does {name} have now?",)),
    _Theme("marbles", None,
           ("{Name} has {a} marbles.", "{Name} starts the game with {a} marbles."),
           {"add": (("{Pron} wins {b} marbles from a friend.", "wins {b}"),
                    ("{Pron} finds {b} more marbles in a drawer.", "finds {b} more")),
            "sub": (("{Pron} loses {b} marbles in the next round.", "loses {b}"),
                    ("{Pron} trades away {b} marbles for a sticker.", "trades away {b}"),
                    ("{b} marbles roll under the fridge and are gone.", "loses {b} under the fridge")),
            "mul": (("A lucky round leaves {obj} with {b} times as many marbles.",
                     "ends a lucky round with {b} times as many"),),
            "div": (("{Pron} divides the marbles into {b} equal shares and keeps one share.",
                     "divides them into {b} equal shares, keeping one"),)},
           ("How many marbles does {name} have now?",
            "How many marbles does {name} have at the end of the day?")),
    _Theme("passengers", "the train",
           ("A train leaves the station with {a} passengers.",
            "There are {a} passengers on a morning train."),
           {"add": (("At the next stop, {b} people get on.", "picks up {b}"),
                    ("{b} more passengers board at the city station.", "picks up {b} more")),
            "sub": (("At the next stop, {b} people get off.", "drops off {b}"),
                    ("{b} passengers leave the train at the museum stop.", "lets {b} off")),
            "mul": (("At the festival stop the crowd grows until the train carries {b} times as many "
                     "passengers.",
                     "grows to {b} times as many"),),
            "div": (("At the junction, only one in every {b} passengers stays on the train.",
                     "keeps only one in every {b}"),)},
           ("How many passengers are on the train now?",
            "How many passengers does the train carry at the end?")),
    _Theme("cookies", None,
           ("{Name} bakes {a} cookies.", "{Name} takes a tray of {a} cookies out of the oven."),
           {"add": (("{Pron} bakes another batch of {b} cookies.", "bakes {b} more"),
                    ("A friend brings {obj} {b} more cookies.", "gets {b} from a friend")),
            "sub": (("{Pron} sells {b} cookies at the bake sale.", "sells {b}"),
                    ("{Poss} family eats {b} of the cookies.", "loses {b} to the hungry family"),
                    ("{Pron} drops a plate and {b} cookies break.", "breaks {b}")),
            "mul": (("For a party, {pron} scales the recipe up so there are {b} times as many cookies.",
                     "scales up to {b} times as many"),),
            "div": (("{Pron} packs the cookies equally into {b} boxes and keeps one box for home.",
                     "packs them equally into {b} boxes, keeping one"),)},
           ("How many cookies does {name} have now?",)),
    _Theme("dollars", None,
           ("{Name} has saved {a} dollars.", "{Name} opens a savings jar with {a} dollars."),
           {"add": (("{Pron} earns {b} dollars by walking dogs.", "earns {b}"),
                    ("{Pron} gets {b} dollars as a gift.", "gets {b} as a gift"),
                    ("{Pron} sells old toys for {b} dollars.", "sells old toys for {b}")),
            "sub": (("{Pron} spends {b} dollars on a new game.", "spends {b}"),
                    ("{Pron} pays {b} dollars for a concert ticket.", "pays {b} for a ticket")),
            "mul": (("A bank promotion leaves {obj} with {b} times as much money as before.",
                     "ends up with {b} times as much after a promotion"),),
            "div": (("{Pron} splits {poss} money equally into {b} envelopes and keeps one envelope.",
                     "splits it equally into {b} envelopes, keeping one"),)},
           ("How many dollars does {name} have now?", "How much money, in dollars, does {name} have now?")),
)


def generate_arith(difficulty: int, count: int, seed: int = 0) -> list[Problem]:
    """`count` word problems with `difficulty` operations each. Problem i depends only on (seed,
    difficulty, i), so a larger count extends a set without changing its first problems."""
    _check_difficulty(difficulty)
    if count < 1:
        raise UserError(f"count must be at least 1, got {count}")
    return [_arith_problem(difficulty, seed, i, f"s{seed}-{i}", f"arith:{difficulty}") for i in range(count)]


def _arith_problem(difficulty: int, seed: int, i: int, key: str, dataset: str) -> Problem:
    rng = random.Random(f"{seed}:{difficulty}:{i}")
    theme = rng.choice(_THEMES)
    words = _subject_words(theme, rng)
    cap = _CAPS[difficulty]
    value = rng.randint(4, cap)
    story = [rng.choice(theme.starts).format(a=value, **words)]
    solution, phrasing = [], None
    for step in range(difficulty):
        op, operand, result = _next_operation(value, cap, rng)
        # Never the same phrasing twice in a row ("He spends ... He spends ..."), when there is another.
        phrasing = rng.choice([p for p in theme.ops[op] if p != phrasing] or theme.ops[op])
        sentence, clause = phrasing
        sentence = sentence.format(b=operand, **words)
        if step > 0 and rng.random() < 0.5:
            sentence = f"{rng.choice(_CONNECTORS)}, {sentence[0].lower()}{sentence[1:]}"
        story.append(sentence)
        had = "starts with" if step == 0 else "has"
        action = clause.format(b=operand, **words)
        solution.append(f"{words['Name']} {had} {value} {theme.unit} and {action}, "
                        f"so {words['pron']} has {value} {_SYMBOL[op]} {operand} = {result} {theme.unit}.")
        value = result
    story.append(rng.choice(theme.questions).format(**words))
    solution.append(f"The answer is {value}.")
    return Problem(key=key, question=" ".join(story), answer=str(value), dataset=dataset,
                   difficulty=difficulty, meta={"seed": seed, "solution": solution})


def _subject_words(theme: _Theme, rng: random.Random) -> dict[str, str]:
    if theme.subject is None:
        name, pronoun = rng.choice(NAMES)
    else:
        name, pronoun = theme.subject, "it"
    pron, obj, poss = _PRONOUNS[pronoun]
    return {"Name": name[0].upper() + name[1:], "name": name, "Pron": pron.capitalize(), "pron": pron,
            "obj": obj, "Poss": poss.capitalize(), "poss": poss}


def _next_operation(value: int, cap: int, rng: random.Random) -> tuple[str, int, int]:
    """A random operation that keeps the running quantity an integer in [2, cap]: at least 2 so the
    story never says "1 apples", and operands at least 2 for the same reason."""
    choices = []
    if value + 2 <= cap:
        b = rng.randint(2, cap - value)
        choices.append(("add", b, value + b))
    if value >= 4:
        b = rng.randint(2, value - 2)
        choices.append(("sub", b, value - b))
    if 2 * value <= cap:
        b = rng.randint(2, min(_MAX_FACTOR, cap // value))
        choices.append(("mul", b, value * b))
    divisors = [d for d in range(2, _MAX_FACTOR + 1) if value % d == 0 and value // d >= 2]
    if divisors:
        b = rng.choice(divisors)
        choices.append(("div", b, value // b))
    return rng.choice(choices)


def _check_difficulty(difficulty: int) -> None:
    if not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
        raise UserError(f"difficulty {difficulty} is out of range {MIN_DIFFICULTY}..{MAX_DIFFICULTY}")


def _spec_level(text: str) -> int:
    """A level typed in a spec, in range (a number of thousands of digits is refused before int())."""
    if len(text) > 3:
        raise UserError(f"difficulty {text[:20]}{'...' if len(text) > 20 else ''} is out of range "
                        f"{MIN_DIFFICULTY}..{MAX_DIFFICULTY}")
    _check_difficulty(int(text))
    return int(text)


def load_problems(spec: str, limit: int | None = None, seed: int = 0) -> list[Problem]:
    """The problems named by `spec`, the first `limit` of them when given:
    - `arith:D`: generated, difficulty D (1..5), DEFAULT_COUNT problems unless limited;
    - `arith:A-B`: generated, levels A..B in round robin (so any prefix is balanced), DEFAULT_COUNT
      per level unless limited;
    - `gsm8k`, `math500`: the benchmarks shipped in reasoning/data/ (SHIPPED), in their source order;
      `math500:level=5`, `math500:subject=Algebra`, `math500:level=4-5,subject=Geometry`: a subset;
    - `path/to/file.jsonl`: GSM8K rows (question, answer with "#### N") or MATH rows (problem with
      answer, or with a solution holding \\boxed{});
    - `hf:NAME[:SPLIT]` or `hf:NAME:CONFIG:SPLIT`: a Hugging Face dataset (split "test" by default),
      rows mapped as for JSONL;
    - `arclab:train`, `arclab:test`: generated ARC-like tasks (reasoning/arclab.py; test = held-out
      compositions), arclab.DEFAULT_COUNT unless limited;
    - `arc:PATH`: ARC-AGI task files (one .json, a folder of them, or a JSONL of tasks; reasoning/fewshot.py);
    - `arc-agi`: ARC-AGI-1's 400 public evaluation tasks, shipped in reasoning/data/.
    `seed` only changes generated sets: files and shipped benchmarks have one order."""
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1, got {limit}")
    if spec.startswith("arith:"):
        problems = _load_arith(spec, limit, seed)
    elif spec.partition(":")[0] in SHIPPED:
        problems = _load_shipped(spec)
    elif spec.startswith("hf:"):
        problems = _load_hf(spec, limit)
    elif spec.startswith("arclab:"):
        problems = _load_arclab(spec, limit, seed)
    elif spec.startswith("arc:"):
        from reasoning import fewshot

        problems = fewshot.load(Path(spec[4:]))
    elif spec == "arc-agi":
        from reasoning import fewshot

        problems = fewshot.load_arc_agi()
    elif spec.endswith(".jsonl"):
        problems = _load_jsonl(Path(spec))
    else:
        raise UserError(f"unknown problem set '{spec[:80]}': use arith:D, arith:A-B, gsm8k, math500[:level=L], "
                        "a .jsonl file, hf:NAME[:split], arclab:train|test, arc:PATH or arc-agi")
    if not problems:
        raise UserError(f"{spec}: no problems in it")
    return problems[:limit]


def _load_arclab(spec: str, limit: int | None, seed: int) -> list[Problem]:
    from reasoning import arclab

    split = spec.partition(":")[2]
    if split not in arclab.SPLITS:
        raise UserError(f"bad problem set '{spec[:80]}': expected arclab:train or arclab:test (held-out compositions)")
    return arclab.load(split, limit, seed)


def _arclab_problem(dataset: str, key: str) -> Problem:
    from reasoning import arclab

    load_problems(dataset, limit=1)  # refuses arclab:x
    split = dataset.partition(":")[2]
    match = re.fullmatch(rf"arclab-{split}-s(-?\d{{1,18}})-(\d{{1,9}})", key)
    if not match or f"arclab-{split}-s{int(match.group(1))}-{int(match.group(2))}" != key:
        raise UserError(f"{dataset} has no problem {key[:80]!r}: built-in problems come from the generator")
    return arclab.problem(split, int(match.group(2)), int(match.group(1)))


def _load_arith(spec: str, limit: int | None, seed: int) -> list[Problem]:
    match = re.fullmatch(r"arith:(\d+)(?:-(\d+))?", spec)
    if not match:
        raise UserError(f"bad problem set '{spec}': expected arith:D or arith:A-B with D in "
                        f"{MIN_DIFFICULTY}..{MAX_DIFFICULTY}")
    low, high = (_spec_level(text) for text in (match.group(1), match.group(2) or match.group(1)))
    if match.group(2) is None:
        return generate_arith(low, limit or DEFAULT_COUNT, seed)
    if low > high:
        raise UserError(f"bad problem set '{spec}': the first level must not exceed the second")
    levels = range(low, high + 1)
    problems = []
    for j in range(limit or DEFAULT_COUNT * len(levels)):
        level, i = levels[j % len(levels)], j // len(levels)
        problems.append(_arith_problem(level, seed, i, f"s{seed}-d{level}-{i}", spec))
    return problems


# --- the benchmarks shipped in reasoning/data/ (sources, commits and licenses: reasoning/data/README.md)

_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class _Benchmark:
    file: str
    count: int  # problems in the file: a file that holds another number is refused (a bad copy)
    subsets: tuple[str, ...]  # the fields a spec may select on (name:field=value,...)
    extractor: str = STANDARD  # how its answers are read and graded (reasoning.answers.EXTRACTORS)


SHIPPED = {"gsm8k": _Benchmark("gsm8k_test.jsonl.gz", 1319, (), extractor="gsm8k"),
           "math500": _Benchmark("math500_test.jsonl.gz", 500, ("level", "subject"), extractor="math")}
MATH_LEVELS = (1, 5)


def dataset_extractor(spec: str) -> str:
    """The answer extractor of a problem set: a shipped benchmark's own, a task set's (arclab, arc) the
    task's own format, else the standard one."""
    if spec.partition(":")[0] in ("arclab", "arc", "arc-agi"):
        return TASK
    bench = SHIPPED.get(spec.partition(":")[0])
    return bench.extractor if bench else STANDARD


def _load_shipped(spec: str) -> list[Problem]:
    """A shipped benchmark, or the subset a spec selects: within one field the values add up
    (level=1,level=2), across fields they narrow (level=5,subject=Algebra). Copies: callers may
    change a problem's meta."""
    name, _, subset = spec.partition(":")
    problems = _shipped(name)
    if subset or spec.endswith(":"):
        keep = _subset(spec, name, subset)
        problems = tuple(p for p in problems if keep(p))
    return [dataclasses.replace(p, meta=dict(p.meta)) for p in problems]


@lru_cache(maxsize=None)
def _shipped(name: str) -> tuple[Problem, ...]:
    """Every problem of a shipped benchmark, read once per process. The dataset of each is the bare
    name (`math500`, not the subset asked for), so a problem is one stored problem whichever subset
    a run picked; a run keeps the spec it was given as its own dataset."""
    bench = SHIPPED[name]
    path = _DATA / bench.file
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise UserError(f"{name}: cannot read the shipped file {path} ({error}): reinstall ThinkTrace") from None
    rows = [strict_json.loads(line, f"{bench.file} line {i + 1}") for i, line in enumerate(text.splitlines())]
    if len(rows) != bench.count:
        raise UserError(f"{name}: the shipped file {path} has {len(rows)} problems, not {bench.count}: reinstall ThinkTrace")
    problems = tuple(_benchmark_problem(name, i, row) for i, row in enumerate(rows))
    if len({p.key for p in problems}) != len(problems):
        raise UserError(f"{name}: the shipped file {path} repeats a problem key: reinstall ThinkTrace")
    return problems


def _benchmark_problem(name: str, index: int, row: dict) -> Problem:
    where = f"{SHIPPED[name].file} line {index + 1}"
    if name == "gsm8k":  # key: the source line, 0-based (the file has no ids)
        return _row_to_problem(row, where, f"gsm8k-test-{index}", name)
    problem = _row_to_problem({k: v for k, v in row.items() if k != "solution"}, where, row["unique_id"], name)
    problem.key = row["unique_id"]
    problem.meta = {"level": row["level"], "subject": row["subject"], "solution": row["solution"]}
    return problem


def _subset(spec: str, name: str, subset: str):
    """The filter of `name:field=value,...` (one UserError line for anything else)."""
    fields = SHIPPED[name].subsets
    if not fields:
        raise UserError(f"bad problem set '{spec[:80]}': {name} has no subsets, use {name}")
    wanted: dict[str, set] = {}
    for part in subset.split(","):
        field, eq, value = (text.strip() for text in part.partition("="))
        if not eq or not field or not value:
            raise UserError(f"bad problem set '{spec[:80]}': expected {name}:FIELD=VALUE[,FIELD=VALUE...] "
                            f"with FIELD one of {', '.join(fields)}")
        if field not in fields:
            raise UserError(f"bad problem set '{spec[:80]}': unknown field '{field[:20]}' "
                            f"(use {' or '.join(fields)})")
        wanted.setdefault(field, set()).update(
            _levels(spec, value) if field == "level" else {_subject(spec, name, value)})
    return lambda p: all(p.meta[field] in values for field, values in wanted.items())


def _levels(spec: str, value: str) -> set[int]:
    low, high = MATH_LEVELS
    match = re.fullmatch(r"(\d{1,3})(?:-(\d{1,3}))?", value)
    first, last = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (None, None)
    if first is None or not low <= first <= last <= high:
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise UserError(f"bad problem set '{spec[:80]}': level {shown} is out of range {low}..{high} "
                        f"(a level, or levels like level={low + 2}-{high})")
    return set(range(first, last + 1))


def _slug(text: str) -> str:
    """"Counting & Probability", "counting_and_probability" and "counting-and-probability" alike."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower().replace("&", " and ")).strip("_")


def _subject(spec: str, name: str, value: str) -> str:
    subjects = sorted({p.meta["subject"] for p in _shipped(name)})
    found = next((s for s in subjects if _slug(s) == _slug(value)), None)
    if found is None:
        raise UserError(f"bad problem set '{spec[:80]}': no subject '{value[:30]}' in {name} "
                        f"(one of: {', '.join(subjects)})")
    return found


def builtin_problem(dataset: str, key: str) -> Problem | None:
    """The problem a built-in set has under `key`, or None for any other dataset: for arith:D and
    arith:A-B the one its generator makes (built-in problems never come from data), for a shipped
    benchmark (gsm8k, math500) its row in reasoning/data/. A key the set does not have is a
    UserError. O(1): the generator makes problem i from (seed, level, i) alone; a benchmark is read
    once per process."""
    name = dataset.partition(":")[0]
    if name in SHIPPED:
        if dataset != name:  # its problems are stored under the bare name, whatever subset a run used
            raise UserError(f"dataset {dataset[:80]!r}: problems of {name} are stored under the dataset {name!r}")
        found = _shipped_index(name).get(key)
        if found is None:
            raise UserError(f"{name} has no problem {key[:80]!r}: its problems come from the shipped data")
        return dataclasses.replace(found, meta=dict(found.meta))
    if dataset.startswith("arclab:"):
        return _arclab_problem(dataset, key)
    if not dataset.startswith("arith:"):
        return None
    load_problems(dataset, limit=1)  # refuses a malformed set name (arith:9, arith:x)
    low, _, high = dataset[len("arith:"):].partition("-")
    ranged = re.fullmatch(r"s(-?\d{1,18})-d(\d)-(\d{1,9})", key) if high else None
    single = None if high else re.fullmatch(r"s(-?\d{1,18})-(\d{1,9})", key)
    if ranged and int(low) <= int(ranged.group(2)) <= int(high):
        seed, level, i = (int(part) for part in ranged.groups())
        canonical = f"s{seed}-d{level}-{i}"
    elif single:
        (seed, i), level = (int(part) for part in single.groups()), int(low)
        canonical = f"s{seed}-{i}"
    else:
        canonical = None
    if canonical != key:  # "s0-01" is not a key the generator writes
        raise UserError(f"{dataset} has no problem {key[:80]!r}: built-in problems come from the generator")
    return _arith_problem(level, seed, i, key, dataset)


@lru_cache(maxsize=None)
def _shipped_index(name: str) -> dict[str, Problem]:
    return {p.key: p for p in _shipped(name)}


def _load_jsonl(path: Path) -> list[Problem]:
    """Rows of a JSONL file; the dataset name is the file stem plus a hash of its content, so two
    different files that share a name never mix in the store."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a .jsonl file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    dataset = f"{path.stem}#{hashlib.sha256(data).hexdigest()[:8]}"
    try:  # a BOM (Windows editors write one) is not part of the first row
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:  # replacing bad bytes would change questions and answers silently
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(f"{path.name} line {line}: not UTF-8 (byte {error.start}): save the file as UTF-8") from None
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):  # JSON Lines: rows end at "\n" only
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        rows.append((where, str(number), _parse_line(line, where)))
    return _rows_to_problems(rows, dataset)


def _parse_line(line: str, where: str) -> Any:
    """One JSON value under the rules every imported file obeys (reasoning.strict_json): NaN,
    Infinity, numbers beyond a double or 64 bits and deep nesting are one line each."""
    return strict_json.loads(line, where)


def _load_hf(spec: str, limit: int | None) -> list[Problem]:
    parts = spec[len("hf:"):].split(":")
    if not parts[0] or len(parts) > 3:
        raise UserError(f"bad problem set '{spec}': expected hf:NAME[:SPLIT] or hf:NAME:CONFIG:SPLIT")
    name = parts[0]
    config = parts[1] if len(parts) == 3 else None
    split = parts[-1] if len(parts) > 1 else "test"
    try:
        import datasets
    except ImportError:
        raise UserError("hf: problem sets need the `datasets` package: install datasets "
                        "(pip install datasets)") from None
    try:
        with _quiet_hub():  # its retries log a warning each: the failure is one line, ours
            table = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # network, missing cache, unknown name or split: all the user's to fix
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"{spec}: cannot load the dataset (hub unreachable and not cached, or wrong "
                        f"name/split?): {reason}") from None
    rows = []
    for index, row in enumerate(table):
        if limit is not None and index >= limit:
            break
        rows.append((f"{spec} row {index}", str(index), row))
    return _rows_to_problems(rows, spec)


@contextlib.contextmanager
def _quiet_hub():
    """Errors only from the Hugging Face libraries' loggers while a dataset loads (restored after)."""
    import logging

    loggers = [logging.getLogger(name) for name in ("datasets", "huggingface_hub")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _rows_to_problems(rows: Iterable[tuple[str, str, Any]], dataset: str) -> list[Problem]:
    problems, seen = [], set()
    for where, default_key, row in rows:
        problem = _row_to_problem(row, where, default_key, dataset)
        if problem.key in seen:
            raise UserError(f"{where}: duplicate key '{problem.key}'")
        seen.add(problem.key)
        problems.append(problem)
    return problems


def _row_to_problem(row: Any, where: str, default_key: str, dataset: str) -> Problem:
    """One GSM8K-shaped row (question, answer "... #### N") or MATH-shaped row (problem, and answer
    or a solution with \\boxed{}). Every field is checked here, before any model loads: the run would
    otherwise fail when it stores the problem, after the slow load."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object with the problem's fields")
    field = "question" if row.get("question") not in (None, "") else "problem"
    question = _text(row.get(field), field, where)
    if not question:
        raise UserError(f"{where}: missing field 'question' (or 'problem')")
    meta = {}
    if row.get("answer") not in (None, ""):
        answer = _text(row["answer"], "answer", where)
        if "####" in answer:
            meta["solution"] = answer.rsplit("####", 1)[0].strip()
            answer = answer.rsplit("####", 1)[1].strip().replace(",", "")
    elif row.get("solution"):
        meta["solution"] = _text(row["solution"], "solution", where)
        answer = extract_answer(meta["solution"], allow_fallback=False).value
        if answer is None:
            raise UserError(f"{where}: no final answer (\\boxed{{}}) in field 'solution'")
    elif "answer" in row and row["answer"] is None:
        answer = None  # said explicitly: a question without a known answer, its runs are not graded
    else:
        raise UserError(f"{where}: missing field 'answer' (or 'solution'); for a question without a known "
                        f"answer write \"answer\": null (its runs are then not graded)")
    if answer is not None and not answer.strip():
        raise UserError(f"{where}: empty answer")
    field = "id" if "id" in row else "key"
    key = _text(row.get(field), field, where)
    return Problem(key=key or default_key, question=question,
                   answer=None if answer is None else answer.strip(), dataset=dataset,
                   difficulty=_difficulty(row, where), meta=meta)


def _text(value: Any, field: str, where: str) -> str | None:
    """A field that must be one value written as text: a string or a finite number (2 -> "2"); None
    stays None. A list or object is refused, not turned into its Python spelling ("[4]" as a gold
    answer), and so is a string the database cannot store (a lone UTF-16 surrogate from "\\ud800")."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = {bool: "true/false", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
        raise UserError(f"{where}: field '{field}' must be a string or a number, not {kind}")
    if isinstance(value, float) and not math.isfinite(value):  # from a Hugging Face table
        raise UserError(f"{where}: field '{field}' is {value}, not a finite number")
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{where}: field '{field}' holds a character that is not valid Unicode") from None
    return text


# A stored difficulty is a 64-bit integer: the store's INTEGER column holds no more.
MAX_LEVEL = 2**63 - 1


def _difficulty(row: dict, where: str) -> int | None:
    """`level` or `difficulty` as an int when it holds one: 3, "3" and MATH's "Level 3" all give 3;
    one too large to store is refused."""
    value = row.get("level", row.get("difficulty"))
    if isinstance(value, str):
        match = re.search(r"\d+", value)
        digits = match.group(0) if match else None
    else:
        digits = str(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if digits is None:
        return None
    if len(digits.lstrip("-")) > len(str(MAX_LEVEL)) or abs(int(digits)) > MAX_LEVEL:  # no int() of 5000 digits
        shown = digits if len(digits) <= 20 else digits[:20] + "..."
        raise UserError(f"{where}: level {shown} is too large (at most {MAX_LEVEL})")
    return int(digits)

"""Tasks that carry demonstrations: a few input/output pairs and a test input whose output is the
answer (ARC and its kin). One place for how such a task is read from a file, written as the text a
model reads, graded, and cut into the leave-one-out tasks test-time training learns from.

Values are grids (reasoning/grids.py: ARC's colours 0-9) or short texts. Files:
- ARC-AGI JSON: `{"train": [{"input": G, "output": G}, ...], "test": [{"input": G, "output": G}, ...]}`,
  one task per `.json` file (the file stem is its id) or a folder of them; a task with several test
  inputs gives one problem per test input (`ID:0`, `ID:1`), as ARC scores them;
- JSONL, one task per line: the ARC shape with an `"id"`, or the generic few-shot shape
  `{"id": ..., "demos": [{"input": V, "output": V}, ...], "input": V, "output": V}` (V a grid or a string).

A problem built here has `meta["answer_format"]` "grid" or "text", its demonstrations and test input
in meta (JSON), and its question is the rendered task, so any strategy can run on it in context.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Union

from reasoning import strict_json
from reasoning.errors import UserError
from reasoning.grids import (ANSWER_FORMAT as GRID, Grid, check_grid, extract_grid_answer, format_grid,
                             parse_grid)
from reasoning.types import Problem

TEXT = "text"
Value = Union[Grid, str]
MAX_DEMOS = 20
MAX_TEXT = 4000  # characters of one text value
STOP = ["\n\n"]  # an output ends at a blank line


def _block(value: Value) -> str:
    """A value as lines, each ended by a newline (a text's blank lines are closed up: a blank line
    ends an output)."""
    if isinstance(value, str):
        return "".join(line + "\n" for line in value.strip().split("\n") if line.strip())
    return format_grid(value)


def render(demos: list[tuple[Value, Value]], test_input: Value, test_output: Value | None = None
           ) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The task as the text a model reads, and the character spans of its outputs (each with the
    blank line after it: training puts its loss there, so a model learns to end an output). Without
    `test_output` the text ends with an open "output:" for the model to complete."""
    text, spans = "", []
    for i, (x, y) in enumerate(demos):
        text += f"input:\n{_block(x)}output:\n"
        start = len(text)
        text += _block(y) + "\n"
        spans.append((start, len(text)))
    text += f"input:\n{_block(test_input)}output:\n"
    if test_output is not None:
        start = len(text)
        text += _block(test_output) + "\n"
        spans.append((start, len(text)))
    return text, tuple(spans)


def answer_text(value: Value) -> str:
    """The gold answer as stored: a grid's answer text, or the text's lines."""
    return format_grid(value) if not isinstance(value, str) else _block(value).rstrip("\n")


def extract(answer_format: str, completion: str) -> str | None:
    """A completion's answer: its first grid, or for a text task its first line up to the blank line."""
    if answer_format == GRID:
        return extract_grid_answer(completion)
    out = completion.split("\n\n")[0].strip()
    return out or None


def values_of(meta: dict) -> tuple[list[tuple[Value, Value]], Value]:
    """A task problem's demonstrations and test input, back from its (JSON) meta."""
    conv = (lambda v: tuple(map(tuple, v))) if meta.get("answer_format") == GRID else (lambda v: v)
    return [(conv(x), conv(y)) for x, y in meta["demos"]], conv(meta["test_input"])


def is_task(problem: Problem) -> bool:
    return problem.meta.get("answer_format") in (GRID, TEXT) and "demos" in problem.meta


def problem(key: str, demos: list[tuple[Value, Value]], test_input: Value, test_output: Value | None,
            dataset: str, difficulty: int | None = None, **meta) -> Problem:
    kind = TEXT if isinstance(test_input, str) else GRID
    as_json = (lambda v: v) if kind == TEXT else (lambda v: [list(r) for r in v])
    return Problem(key=key, question=render(demos, test_input)[0],
                   answer=None if test_output is None else answer_text(test_output), dataset=dataset,
                   difficulty=difficulty,
                   meta={"answer_format": kind, "demos": [[as_json(x), as_json(y)] for x, y in demos],
                         "test_input": as_json(test_input), **meta})


def leave_one_out(demos: list) -> list[tuple[list, Any]]:
    """Akyürek et al.'s training tasks: each demonstration in turn becomes the test pair, the others
    its demonstrations (n demonstrations give n tasks of n-1; one demonstration gives none)."""
    if len(demos) < 2:
        return []
    return [(demos[:i] + demos[i + 1:], demos[i]) for i in range(len(demos))]


def rank(answers: list[str | None]) -> list[str]:
    """The vote over a task's predictions (test-time training's augmented ones): distinct answers,
    most votes first; a tie goes to the earlier prediction (the task as given first). ARC's two
    attempts are the first two."""
    votes = Counter(a for a in answers if a is not None)
    return sorted(votes, key=lambda a: (-votes[a], answers.index(a)))


# --- files -----------------------------------------------------------------------------------------

def load(path: Path) -> list[Problem]:
    """The problems of an ARC task file, a folder of them, or a JSONL of tasks (module docstring).
    Anything malformed is one UserError naming the file (and line) and what is wrong."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise UserError(f"{path}: no .json or .jsonl task files in this folder")
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + _read(f))
        dataset = f"arc:{path.name}#{digest.hexdigest()[:8]}"
        return [p for f in files for p in _load_file(f, dataset)]
    data = _read(path)
    return _load_file(path, f"arc:{path.stem}#{hashlib.sha256(data).hexdigest()[:8]}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None


def _load_file(path: Path, dataset: str) -> list[Problem]:
    data = _read(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path.name}: not UTF-8: save the file as UTF-8") from None
    if path.suffix == ".json":
        return _task_problems(_json(text, path.name), path.stem, path.name, dataset)
    if path.suffix != ".jsonl":
        raise UserError(f"{path.name}: an ARC task is a .json file (or a .jsonl of tasks)")
    return _load_lines(text, path.name, dataset)


def _load_lines(text: str, name: str, dataset: str) -> list[Problem]:
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            where = f"{name} line {number}"
            row = _json(line, where)
            if not isinstance(row, dict):
                raise UserError(f"{where}: a task must be a JSON object")
            key = row.get("id", str(number))
            if not isinstance(key, (str, int)) or isinstance(key, bool) or not str(key).strip():
                raise UserError(f"{where}: \"id\" must be a non-empty string")
            problems.extend(_task_problems(row, str(key), where, dataset))
    keys = [p.key for p in problems]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise UserError(f"{name}: task id {dup!r} appears twice")
    return problems


# ARC-AGI-1's public evaluation set, shipped (reasoning/data/README.md): `--dataset arc-agi`.
ARC_AGI = Path(__file__).parent / "data" / "arc_agi_evaluation.jsonl.gz"
ARC_AGI_TASKS = 400


def load_arc_agi() -> list[Problem]:
    """ARC-AGI-1's 400 public evaluation tasks (one problem per test input, keys = task ids)."""
    import gzip

    problems = _load_lines(gzip.decompress(ARC_AGI.read_bytes()).decode("utf-8"), ARC_AGI.name, "arc-agi")
    if len({p.key.split(":")[0] for p in problems}) != ARC_AGI_TASKS:
        raise UserError(f"{ARC_AGI}: expected {ARC_AGI_TASKS} tasks: the shipped file is damaged, reinstall it")
    return problems


def _json(text: str, where: str) -> Any:
    try:
        return strict_json.loads(text, where)
    except UserError:
        raise
    except ValueError as error:
        raise UserError(f"{where}: not valid JSON ({str(error).splitlines()[0][:120]})") from None


def _task_problems(row: Any, key: str, where: str, dataset: str) -> list[Problem]:
    if not isinstance(row, dict):
        raise UserError(f"{where}: an ARC task must be a JSON object with \"train\" and \"test\"")
    if "train" in row or "test" in row:
        demos_raw, tests_raw = row.get("train"), row.get("test")
        if not isinstance(demos_raw, list) or not demos_raw:
            raise UserError(f"{where}: \"train\" must be a non-empty list of {{\"input\", \"output\"}} pairs")
        if not isinstance(tests_raw, list) or not tests_raw:
            raise UserError(f"{where}: \"test\" must be a non-empty list of {{\"input\"[, \"output\"]}} pairs")
    elif "demos" in row:
        demos_raw, tests_raw = row.get("demos"), [{k: row[k] for k in ("input", "output") if k in row}]
        if not isinstance(demos_raw, list) or not demos_raw:
            raise UserError(f"{where}: \"demos\" must be a non-empty list of {{\"input\", \"output\"}} pairs")
    else:
        raise UserError(f"{where}: a task needs \"train\" and \"test\" (ARC) or \"demos\" and \"input\" (few-shot)")
    if len(demos_raw) > MAX_DEMOS:
        raise UserError(f"{where}: {len(demos_raw)} demonstrations; at most {MAX_DEMOS}")
    demos = [_pair(d, f"{where} demonstration {i}", need_output=True) for i, d in enumerate(demos_raw)]
    kinds = {isinstance(v, str) for pair in demos for v in pair}
    problems = []
    for t, test in enumerate(tests_raw):
        x, y = _pair(test, f"{where} test {t}", need_output=False)
        if {isinstance(v, str) for v in (x, y) if v is not None} | kinds != kinds or len(kinds) != 1:
            raise UserError(f"{where}: mixes grids and texts; a task is all grids or all texts")
        problems.append(problem(key if len(tests_raw) == 1 else f"{key}:{t}", demos, x, y, dataset))
    return problems


def _pair(item: Any, where: str, need_output: bool) -> tuple[Value, Value | None]:
    if not isinstance(item, dict) or "input" not in item:
        raise UserError(f"{where}: must be an object with \"input\"" + (" and \"output\"" if need_output else ""))
    if need_output and "output" not in item:
        raise UserError(f"{where}: has no \"output\"")
    return _value(item["input"], f"{where} input"), (_value(item["output"], f"{where} output")
                                                     if item.get("output") is not None else None)


def _value(value: Any, where: str) -> Value:
    if isinstance(value, str):
        if not value.strip() or len(value) > MAX_TEXT:
            raise UserError(f"{where}: a text value must be 1-{MAX_TEXT} characters")
        return value
    return check_grid(value, where)


def grid_answer(answer: str | None) -> Grid | None:
    """A stored grid answer's grid (for drawing)."""
    return parse_grid(answer) if answer else None

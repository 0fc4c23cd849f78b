"""Strict JSON for files from outside (bundles, peer traces, datasets): one UserError for anything
that would otherwise surface later as a crash or as invalid JSON in our own output.

Python's `json` accepts NaN and Infinity, turns 1e400 into inf, raises ValueError (not a decode
error) for an integer of thousands of digits and RecursionError for deep nesting; the database
cannot hold integers beyond 64 bits, and recursive code downstream (text extraction, renderers)
must not meet nesting it cannot walk. Here all of these are refused at the door, so every reader
gets the same rules (P3 of issue 14: non-finite numbers are refused on every input)."""
from __future__ import annotations

import json
import math
from typing import Any

from reasoning.errors import UserError

MAX_DEPTH = 64  # nesting of arrays and objects
INT64 = 2**63 - 1


def loads(data: bytes | bytearray | str, name: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document (or one JSONL line) or raise one UserError that starts with `name`:
    invalid UTF-8 or JSON, NaN / Infinity / numbers beyond a double, integers beyond 64 bits, and
    nesting deeper than `max_depth`."""
    if not isinstance(data, str):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(f"{name}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        doc = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int64)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except _Refused as exc:
        raise UserError(f"{name}: {exc}") from None
    except RecursionError:
        raise UserError(f"{name}: JSON nested deeper than {max_depth} levels") from None
    if _depth_exceeds(doc, max_depth):
        raise UserError(f"{name}: JSON nested deeper than {max_depth} levels")
    return doc


class _Refused(ValueError):
    pass


def _no_constant(text: str):
    raise _Refused(f"{text} is not a number (non-finite numbers are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is beyond the range of a double")
    return value


def _int64(text: str) -> int:
    # Digits first: int() of thousands of digits is itself refused by Python (a ValueError).
    if len(text.lstrip("-")) > 19 or not -INT64 - 1 <= int(text) <= INT64:
        raise _Refused(f"the integer {text[:24]}{'…' if len(text) > 24 else ''} does not fit in 64 bits")
    return int(text)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative (a recursive walk is what deep nesting is meant to break)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False

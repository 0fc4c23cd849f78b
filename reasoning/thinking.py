"""Thinking traces: the chain of thought a reasoning model writes before its answer, cut into the steps
of a tree with the turns where the model changes course marked.

Reasoning models (DeepSeek-R1 distills, Qwen3 in thinking mode, QwQ) write their thinking between
`<think>` and `</think>`, then the answer. It reaches us three ways: inline in the text (`<think>...
</think>answer`); inline without the opening tag, when the chat template already opened it (R1
distills' templates end with `<think>\\n`); or in a field of its own, as OpenAI-compatible servers
with a reasoning parser return it (`reasoning_content` from vLLM and DeepSeek, `reasoning` from newer
vLLM), the text then being the answer alone.

A thought is a paragraph of the thinking (split at blank lines). A turn is a thought that starts with
one of `TURN_WORDS` ("Wait", "But", "Alternatively", "Hmm"): where o1-style traces check, doubt and
repair. The answer is what follows the end of thinking; a trace cut before `</think>` has none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TURN_WORDS = ("Wait", "But", "Alternatively", "Hmm")
REASONING_FIELDS = ("reasoning_content", "reasoning")  # where servers put the thinking, first found wins


@dataclass(frozen=True)
class Thinking:
    """A completion split at the end of its thinking. Offsets index the text the thinking and answer
    came from (the completion's text; for thinking from its own field, that field)."""

    thinking: str | None  # None: the text holds no thinking
    answer: str  # what follows </think>; the whole text when there is no thinking; "" when cut
    closed: bool  # the thinking ended (</think> seen, or it came in its own field)
    thinking_start: int = 0  # where the thinking begins in the text (after <think>)
    answer_start: int = 0  # where the answer begins in the text (after </think>)


@dataclass(frozen=True)
class Thought:
    text: str  # the paragraph, stripped
    start: int  # offsets of the paragraph in the text it came from
    end: int
    turn: str | None  # the turn word it opens with, if any


def split_thinking(text: str, reasoning: str | None = None, opened: bool = False) -> Thinking:
    """Where the thinking and the answer are in a completion. `reasoning`: the thinking a server
    returned in its own field (the text is then the answer). `opened`: the prompt already opened
    `<think>`, so the text starts inside the thinking."""
    if reasoning is not None:
        return Thinking(reasoning, text, True, 0, 0)
    start = 0
    stripped = len(text) - len(text.lstrip())
    if text[stripped:].startswith(THINK_OPEN):
        start = stripped + len(THINK_OPEN)
    elif not opened and THINK_CLOSE not in text:
        return Thinking(None, text, False, 0, 0)
    end = text.find(THINK_CLOSE, start)
    if end < 0:  # cut (a token budget, a stop) before the end of thinking: no answer yet
        return Thinking(text[start:], "", False, start, len(text))
    answer_start = end + len(THINK_CLOSE)
    return Thinking(text[start:end], text[answer_start:], True, start, answer_start)


def turn_of(paragraph: str, words: tuple[str, ...] = TURN_WORDS) -> str | None:
    """The turn word a paragraph opens with ("Wait, ...", "**Wait**", "Hmm." ...), as a whole word."""
    head = paragraph.lstrip(" \t*_>#-\"'")
    for word in words:
        if re.match(rf"{re.escape(word)}\b", head):
            return word
    return None


def thoughts(text: str, start: int = 0, end: int | None = None, words: tuple[str, ...] = TURN_WORDS) -> list[Thought]:
    """The paragraphs of text[start:end] (split at blank lines), with their offsets and turns."""
    end = len(text) if end is None else end
    out = []
    for match in re.finditer(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", text[start:end], flags=re.S):
        paragraph = match.group(0)
        out.append(Thought(paragraph, start + match.start(), start + match.end(), turn_of(paragraph, words)))
    return out


def parse_turn_words(spec: str) -> tuple[str, ...]:
    """A comma list of turn words (e.g. from --turn-words); blanks dropped."""
    return tuple(w.strip() for w in spec.split(",") if w.strip())


def failed_check(thought: str) -> bool:
    """A thought that checks a step and finds it wrong: the lab thinker's "Check: ...: 96, not 97."
    (reasoning/lab/thinker.py); other models' checks are free text and are not read."""
    return bool(re.match(r"Check:.*\bnot -?\d", thought.strip()))

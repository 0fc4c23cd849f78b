"""How each family of process reward models (PRMs) wants to be called: a registry, one entry per family.

A PRM reads a question and its steps as one token sequence and scores every step at one token
position. The families differ in three things, and a `Convention` names all three:

- how the sequence is built (`encode`): where the step marks go and which token each step's score is
  read at (the "anchor");
- which output holds the score (`head`): the next-token logits of two candidate tokens ("+" vs "-"),
  a 2-class token-classification head, or a scalar value head;
- how to recognise the family (`names` matched against the model id / folder name, `architectures`
  against config.json).

Conventions (the reference code of each family was read; this is our own implementation):

- `math-shepherd` (peiyi9979/math-shepherd-mistral-7b-prm): "question step1 ки\\nstep2 ки" with the
  tokenizer's BOS; score = softmax over the logits of "+" and "-" at each `ки` token, P("+").
- `rlhflow` (RLHFlow/Llama3.1-8B-PRM-Deepseek-Data, -Mistral-Data): a chat where each step is a user
  turn (the first also holds the question) and each assistant turn is "+"; score = P("+") vs P("-")
  from the logits one token before each assistant "+" (the position that predicts it), all steps
  read from one forward pass over the whole conversation.
- `qwen-prm` (Qwen/Qwen2.5-Math-PRM-7B/-72B, Qwen2.5-Math-7B-PRM800K): chat template with the system
  prompt below, the steps as one assistant turn, each followed by `<extra_0>`; the model (its own code,
  so `--trust-remote-code`) gives 2-class logits per token; score = softmax(...)[1] at each `<extra_0>`.
- `skywork` (Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B/-7B): BOS + question + "\\n", then each step
  followed by a "\\n" token (each part tokenized on its own, as Skywork does); a linear value head
  (`v_head.summary` weights in the checkpoint) on the last hidden state; score = sigmoid(value) at
  each step's "\\n".

Picking one. A spec is `prm:MODEL` or `prm:MODEL@CONVENTION`: MODEL is a short name from
`NAMED_PRMS`, a local folder or a Hugging Face id; the convention is detected from the registry when
it is not given. `@CONVENTION` forces one (for a fine-tune whose name says nothing), e.g.
`prm:./my-prm@math-shepherd`. Adding a family is one `register(Convention(...))` call; adding a
ready-made PRM is one `NAMED_PRMS` entry.

This module imports no torch: the CLI validates a spec with it before anything heavy loads.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from reasoning.errors import UserError

# Heads: where a step's score comes from in the model's output.
NEXT_TOKEN = "next_token"  # causal LM logits of two candidate tokens at the score position: P(good)
TOKEN_CLASS = "token_class"  # 2-class logits per token: P(class 1)
VALUE = "value"  # one scalar per token from a value head: sigmoid(value)

# Stands in for each step mark while a chat template renders, so the marks can be found in the
# rendered text afterwards whatever the template does around them (no real text contains it).
SCORE_SLOT = "[[thinktrace-score-slot]]"

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Encoded:
    """One path as the PRM reads it: token ids, and for each step the index of its anchor token."""

    ids: list[int]
    anchors: list[int]


class Encoder(Protocol):
    def __call__(self, tokenizer: Any, question: str, steps: list[str]) -> Encoded: ...


@dataclass(frozen=True)
class Convention:
    name: str
    encode: Encoder
    head: str
    anchor: str  # the token that marks each step: it must be one token of the tokenizer
    read_offset: int = 0  # score position = anchor + read_offset (-1: the logits that predict the anchor)
    candidates: tuple[str, str] | None = None  # NEXT_TOKEN only: (good, bad); the score is P(good)
    needs_chat_template: bool = False
    names: tuple[str, ...] = ()  # regexes (case-insensitive) on the model id's or folder's last part
    architectures: tuple[str, ...] = ()  # config.json `architectures` that identify the family
    about: str = ""

    def required_tokens(self) -> tuple[str, ...]:
        return (self.anchor, *(self.candidates or ()))

    def matches(self, model: str, folder: Path | None, config: dict) -> bool:
        tails = [Path(model.rstrip("/")).name] + ([folder.name] if folder else [])
        if any(re.search(p, t, re.IGNORECASE) for p in self.names for t in tails):
            return True
        return bool(set(config.get("architectures") or ()) & set(self.architectures))


# --- building the token sequences ---------------------------------------------------------------

def single_token(tokenizer: Any, text: str) -> int | None:
    """The id of `text` when the tokenizer keeps it as exactly one known token, else None."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if len(ids) != 1 or (tokenizer.unk_token_id is not None and ids[0] == tokenizer.unk_token_id):
        return None
    return ids[0]


def encode_marked(tokenizer: Any, parts: list[str | None], mark: str, add_special_tokens: bool) -> Encoded:
    """Tokenize the text made of `parts`, where each None is a step mark `mark`, in one piece (as
    the reference code of these families does), and find the token that holds each mark from the
    character offsets, never by searching for the mark's id: a question or a step that contains the
    mark's text (or "+", for rlhflow) cannot shift or add scores."""
    text, spans = "", []
    for part in parts:
        if part is None:
            spans.append((len(text), len(text) + len(mark)))
            part = mark
        text += part
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    anchors, t = [], 0
    for start, end in spans:
        last = end - 1  # the token holding the mark's last character (the mark itself when it is one token)
        while t < len(offsets) and not (offsets[t][0] <= last < offsets[t][1]):
            t += 1
        if t == len(offsets):
            raise ValueError(f"no token covers the step mark at characters {start}-{end}")
        anchors.append(t)
    return Encoded(list(enc["input_ids"]), anchors)


def _split_slots(rendered: str, n_steps: int, mark: str) -> list[str | None]:
    pieces = rendered.split(SCORE_SLOT)
    if len(pieces) != n_steps + 1:
        raise UserError(f"this PRM's chat template dropped or repeated message contents ({len(pieces) - 1} "
                        f"step marks for {n_steps} steps): the step scores cannot be placed")
    parts: list[str | None] = [pieces[0]]
    for piece in pieces[1:]:
        parts += [None, piece]
    return parts


@dataclass(frozen=True)
class TaggedText:
    """Plain text: a prompt, then every step followed by the step tag, steps joined by `joiner`
    (Math-Shepherd's format; a PRM trained on another prompt or joiner is a new instance)."""

    tag: str = "ки"
    prompt: str = "{question} "
    tag_prefix: str = " "
    joiner: str = "\n"

    def __call__(self, tokenizer: Any, question: str, steps: list[str]) -> Encoded:
        parts: list[str | None] = [self.prompt.format(question=question.strip())]
        for i, step in enumerate(steps):
            parts += [(self.joiner if i else "") + step + self.tag_prefix, None]
        return encode_marked(tokenizer, parts, self.tag, add_special_tokens=True)


@dataclass(frozen=True)
class ChatTurns:
    """A chat, one user turn per step (the first with the question), each answered by the assistant
    with `reply` (RLHFlow's format); rendered with the tokenizer's own chat template."""

    reply: str = "+"

    def __call__(self, tokenizer: Any, question: str, steps: list[str]) -> Encoded:
        messages = []
        for i, step in enumerate(steps):
            messages.append({"role": "user", "content": f"{question.strip()} {step}" if i == 0 else step})
            messages.append({"role": "assistant", "content": SCORE_SLOT})
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        return encode_marked(tokenizer, _split_slots(rendered, len(steps), self.reply), self.reply,
                             add_special_tokens=False)


@dataclass(frozen=True)
class SeparatedAnswer:
    """A chat with a system prompt, the question as the user turn and the steps as one assistant
    turn, each step followed by the separator token (Qwen2.5-Math-PRM's format)."""

    separator: str = "<extra_0>"
    system: str = QWEN_PRM_SYSTEM

    def __call__(self, tokenizer: Any, question: str, steps: list[str]) -> Encoded:
        messages = [{"role": "system", "content": self.system},
                    {"role": "user", "content": question.strip()},
                    {"role": "assistant", "content": "".join(step + SCORE_SLOT for step in steps)}]
        rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return encode_marked(tokenizer, _split_slots(rendered, len(steps), self.separator), self.separator,
                             add_special_tokens=False)


@dataclass(frozen=True)
class StepTokens:
    """BOS + question + newline, then each step tokenized on its own and followed by the step token's
    id (Skywork's format: the step token is appended as an id, so it never merges with the text)."""

    step_token: str = "\n"

    def __call__(self, tokenizer: Any, question: str, steps: list[str]) -> Encoded:
        def ids_of(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False).input_ids)

        step_id = ids_of(self.step_token)[-1]
        ids = ids_of((tokenizer.bos_token or "") + question.strip() + "\n")
        anchors = []
        for step in steps:
            ids += ids_of(step)
            anchors.append(len(ids))
            ids.append(step_id)
        return Encoded(ids, anchors)


# --- the registry -------------------------------------------------------------------------------

CONVENTIONS: dict[str, Convention] = {}


def register(convention: Convention) -> Convention:
    CONVENTIONS[convention.name] = convention
    return convention


register(Convention(
    "math-shepherd", TaggedText(), NEXT_TOKEN, anchor="ки", candidates=("+", "-"),
    names=(r"math-shepherd",), about="Math-Shepherd: steps tagged 'ки', P('+') vs P('-') at each tag"))
register(Convention(
    "rlhflow", ChatTurns(), NEXT_TOKEN, anchor="+", read_offset=-1, candidates=("+", "-"),
    needs_chat_template=True, names=(r"Llama3\.1-8B-PRM", r"^RLHFlow.*PRM"),
    about="RLHFlow: one user turn per step, P('+') vs P('-') for each assistant reply"))
register(Convention(
    "qwen-prm", SeparatedAnswer(), TOKEN_CLASS, anchor="<extra_0>", needs_chat_template=True,
    names=(r"Qwen2\.5-Math-PRM", r"Qwen2\.5-Math-7B-PRM800K"), architectures=("Qwen2ForProcessRewardModel",),
    about="Qwen2.5-Math-PRM: steps separated by <extra_0>, 2-class softmax at each"))
register(Convention(
    "skywork", StepTokens(), VALUE, anchor="\n", names=(r"Skywork-o1-Open-PRM",),
    about="Skywork-o1-Open-PRM: value head, sigmoid at each step's newline"))


@dataclass(frozen=True)
class NamedPRM:
    """A ready-made PRM behind a short name: where it is (a hub id, or a function that returns a
    local folder, e.g. one this repo trains) and its convention."""

    source: str | Callable[[], Path]
    convention: str
    about: str = ""


def _lab_prm_folder() -> Path:
    from reasoning.lab import PRM_DIR

    return PRM_DIR


NAMED_PRMS: dict[str, NamedPRM] = {
    # The lab PRM trained by this repo (reasoning/lab/prm.py) in the Math-Shepherd convention.
    "lab": NamedPRM(_lab_prm_folder, "math-shepherd", "ThinkTrace lab PRM (~1M, trained here)"),
    "math-shepherd": NamedPRM("peiyi9979/math-shepherd-mistral-7b-prm", "math-shepherd", "Mistral-7B"),
    "rlhflow-deepseek": NamedPRM("RLHFlow/Llama3.1-8B-PRM-Deepseek-Data", "rlhflow", "Llama-3.1-8B"),
    "rlhflow-mistral": NamedPRM("RLHFlow/Llama3.1-8B-PRM-Mistral-Data", "rlhflow", "Llama-3.1-8B"),
    "qwen2.5-math-prm-7b": NamedPRM("Qwen/Qwen2.5-Math-PRM-7B", "qwen-prm", "needs --trust-remote-code"),
    "skywork-1.5b": NamedPRM("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B", "skywork", "Qwen2.5-1.5B"),
    "skywork-7b": NamedPRM("Skywork/Skywork-o1-Open-PRM-Qwen-2.5-7B", "skywork", "Qwen2.5-7B"),
}


def known_conventions() -> str:
    return ", ".join(CONVENTIONS)


def parse_prm_spec(spec: str) -> tuple[str, str | None]:
    """'MODEL' or 'MODEL@CONVENTION' (the part after `prm:`) -> (MODEL, CONVENTION or None).
    An existing path that itself contains '@' is taken whole."""
    spec = spec.strip()
    model, convention = spec, None
    if "@" in spec and not Path(spec).expanduser().exists():
        model, convention = spec.rsplit("@", 1)
        if convention not in CONVENTIONS:
            raise UserError(f"unknown PRM convention {convention!r} in 'prm:{spec}': choose one of "
                            f"{known_conventions()}")
    if not model:
        raise UserError(f"'prm:{spec}' names no model: use prm:MODEL or prm:MODEL@CONVENTION, where MODEL is "
                        f"one of {', '.join(NAMED_PRMS)}, a local folder or a Hugging Face id")
    return model, convention


def pick_convention(model: str, folder: Path | None, config: dict, explicit: str | None) -> Convention:
    """The convention given after '@', else the one registry entry that recognises the model."""
    if explicit:
        return CONVENTIONS[explicit]
    if model in NAMED_PRMS:
        return CONVENTIONS[NAMED_PRMS[model].convention]
    found = [c for c in CONVENTIONS.values() if c.matches(model, folder, config)]
    if len(found) == 1:
        return found[0]
    why = ("matches several conventions (" + ", ".join(c.name for c in found) + ")") if found else \
        "is not a PRM family ThinkTrace recognises"
    raise UserError(f"PRM '{model}' {why}: name its calling convention as prm:{model}@CONVENTION, "
                    f"one of {known_conventions()}")

"""The lab PRM's arithmetic checker at run time: a small causal LM that recomputes each step's equation.

Why it exists: the lab reasoner's mistakes are mostly digit slips with the right operands
(173 + 58 = 221), and a PRM of the reasoner's size, reading the step the way the reasoner wrote it,
learnt to see the *size* of a result but not its digits (reasoning/lab/MODEL_CARD.md: twins +1 and last
digit at chance after 12x more data, more steps, and two more layers). Checking a digit
is hard in the reasoner's layout because the digits that belong together sit at distances that change
with every number's length. Restated with fixed-width numbers written least significant digit first,
each result digit depends only on the operand digits at fixed offsets and on the digit before it, the
layout where small transformers learn arithmetic quickly (Lee et al. 2023, "Teaching Arithmetic to
Small Transformers"). A step's check is the probability the checker gives to the result the step wrote.

Every written equation is restated as a sum or a product by one digit before it is checked:
a - b = c as c + b = a, a / b = c as c * b = a, a * b = c with the one-digit factor second.
Equations the layout cannot hold (an operand over WIDTH digits, a product of two multi-digit
numbers) are not checked (1.0): the PRM's own score still judges them.

This module is the layout and the loaded checker; training it (random true equations in this layout)
is reasoning/lab/checker.py. The lab PRM (`prm:lab`, verifiers/prm.py `CheckedPRM`) multiplies its
step score by the checker's verdicts on that step and every step before it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from reasoning.backends.torch_device import default_device
from reasoning.problems import EQUATION_RE

WIDTH = 4  # operand digits; the result gets one more
VOCAB = ("<pad>", "<s>", *"0123456789", "+", "*", "=")
IDS = {token: i for i, token in enumerate(VOCAB)}
BOS = IDS["<s>"]
PREFIX = 1 + WIDTH + 1 + WIDTH + 1  # "<s>" x op y "=": the tokens before the result
LENGTH = PREFIX + WIDTH + 1


def restate(a: int, sym: str, b: int, c: int) -> tuple[int, str, int, int] | None:
    """(x, op, y, z) with op + or * (y one digit) such that the written a sym b = c holds iff x op y = z."""
    if sym == "+":
        x, op, y, z = a, "+", b, c
    elif sym == "-":
        x, op, y, z = c, "+", b, a
    elif sym in "*/":
        product, (p, q) = (c, (a, b)) if sym == "*" else (a, (c, b))
        if q > 9:
            p, q = q, p
        if q > 9:
            return None
        x, op, y, z = p, "*", q, product
    else:
        return None
    if max(x, y) >= 10 ** WIDTH or z >= 10 ** (WIDTH + 1):
        return None
    return x, op, y, z


def _digits(n: int, width: int) -> str:
    return str(n)[::-1].ljust(width, "0")


def encode(x: int, op: str, y: int, z: int) -> list[int]:
    """Token ids of x op y = z in the checker's layout: fixed width, least significant digit first."""
    text = _digits(x, WIDTH) + op + _digits(y, WIDTH) + "=" + _digits(z, WIDTH + 1)
    return [BOS] + [IDS[ch] for ch in text]


class ArithmeticChecker:
    """P(the written result is right) for every equation in a step, from the trained checker."""

    def __init__(self, folder: str | Path, device: str | None = None):
        self.device = default_device(device)
        self.model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).to(self.device).eval()
        self.n_params = sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def probabilities(self, equations: list[tuple[int, str, int, int]]) -> list[float]:
        """One probability per (a, sym, b, c) as written; 1.0 for one the layout cannot hold."""
        restated = [restate(*e) for e in equations]
        rows = [encode(*r) for r in restated if r is not None]
        probs: list[float] = []
        if rows:
            ids = torch.tensor(rows, device=self.device)
            logp = self.model(input_ids=ids).logits[:, PREFIX - 1:-1].float().log_softmax(-1)
            probs = logp.gather(-1, ids[:, PREFIX:, None])[..., 0].sum(-1).exp().tolist()
        it = iter(probs)
        return [1.0 if r is None else next(it) for r in restated]

    def step_checks(self, paths: list[list[str]]) -> list[list[float]]:
        """Per step, the product of the checks of its equations (1.0 for a step without one)."""
        found = [[[(int(a), s, int(b), int(c)) for a, s, b, c in EQUATION_RE.findall(step)] for step in steps]
                 for steps in paths]
        flat = [e for steps in found for step in steps for e in step]
        it = iter(self.probabilities(flat))
        out = []
        for steps in found:
            row = []
            for step in steps:
                p = 1.0
                for _ in step:
                    p *= next(it)
                row.append(p)
            out.append(row)
        return out

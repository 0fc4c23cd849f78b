"""The lab PRM's arithmetic checker: a second small model that recomputes each step's equation.

Why it exists: the lab reasoner's mistakes are mostly digit slips with the right operands
(173 + 58 = 221), and a PRM of the reasoner's size, reading the step the way the reasoner wrote it,
learnt to see the *size* of a result but not its digits (MODEL_CARD.md: twins +1 and last digit at
chance after 12x more data, more steps, and two more layers). Checking a digit is hard in the
reasoner's layout because the digits that belong together sit at distances that change with every
number's length. Restated with fixed-width numbers written least significant digit first, each result
digit depends only on the operand digits at fixed offsets and on the digit before it, the layout
where small transformers learn arithmetic quickly (Lee et al. 2023, "Teaching Arithmetic to Small
Transformers"). So the checker is a causal LM over that layout, trained on random equations (free:
no sampling), and a step's check is the probability the checker gives to the result the step wrote.

Every written equation is restated as a sum or a product by one digit before it is checked:
a - b = c as c + b = a, a / b = c as c * b = a, a * b = c with the one-digit factor second.
Equations the layout cannot hold (an operand over WIDTH digits, a product of two multi-digit
numbers) are not checked (1.0): the PRM's own score still judges them.

The lab PRM (`prm:lab`) multiplies its Math-Shepherd step score by the checker's verdicts on that
step and every step before it, since a step is good only when the path so far is (prm.step_labels).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasoning.lab.data import EQUATION_RE
from reasoning.lab.train import ModelConfig, TrainConfig, device, train_loop

WIDTH = 4  # operand digits; the result gets one more
VOCAB = ("<pad>", "<s>", *"0123456789", "+", "*", "=")
IDS = {token: i for i, token in enumerate(VOCAB)}
BOS = IDS["<s>"]
PREFIX = 1 + WIDTH + 1 + WIDTH + 1  # "<s>" x op y "=": the tokens before the result
LENGTH = PREFIX + WIDTH + 1


@dataclass
class CheckerConfig(TrainConfig):
    """The committed checker's settings (model card)."""

    steps: int = 1500  # 100% of 2,000 held-out equations; 97.9% after 700, 99.5% after 1,000
    restart_steps: int = 0
    batch_size: int = 256
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup: int = 100
    log_every: int = 250
    model: ModelConfig = field(default_factory=lambda: ModelConfig(max_len=LENGTH))  # the reasoner's shape


# --- the layout ---------------------------------------------------------------------------------------

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
    text = _digits(x, WIDTH) + op + _digits(y, WIDTH) + "=" + _digits(z, WIDTH + 1)
    return [BOS] + [IDS[ch] for ch in text]


def random_equation(rng: random.Random) -> tuple[int, str, int, int]:
    """A true equation: operand lengths uniform in 1..WIDTH so short numbers and long carries both appear."""
    def number(digits: int) -> int:
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)

    x = number(rng.randint(1, WIDTH))
    if rng.random() < 0.5:
        y = number(rng.randint(1, WIDTH))
        return x, "+", y, x + y
    y = rng.randint(0, 9)
    return x, "*", y, x * y


def batch(step: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    rng = random.Random(f"checker:{seed}:{step}")
    ids = torch.tensor([encode(*random_equation(rng)) for _ in range(size)])
    labels = ids.clone()
    labels[:, :PREFIX] = -100  # the loss is on the result digits only
    return {"input_ids": ids, "labels": labels}


# --- training -----------------------------------------------------------------------------------------

def build(cfg: ModelConfig, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=cfg.d_model, intermediate_size=cfg.d_ff, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.max_len,
        rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=BOS, eos_token_id=None, pad_token_id=IDS["<pad>"])
    return LlamaForCausalLM(config)


def train_checker(cfg: CheckerConfig, out: Path | None = None, log=print, on_step=None):
    log = log or (lambda line: None)
    torch.set_num_threads(cfg.threads)
    started, cpu_started = time.time(), time.process_time()
    model = build(cfg.model, cfg.seed).to(device())
    n_params = sum(p.numel() for p in model.parameters())
    log(f"checker: {n_params / 1e6:.2f}M parameters, {cfg.steps} steps x {cfg.batch_size} equations")
    losses = train_loop(model, lambda step: batch(step, cfg.batch_size, cfg.seed), cfg, log, on_step)
    accuracy = exact_accuracy(model, 2000, seed=cfg.seed + 1)
    info = {"kind": "checker", "params": n_params, "train_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 5), "held_out_exact": accuracy,
            "config": asdict(cfg), "layout": {"width": WIDTH, "vocab": list(VOCAB)},
            "torch": torch.__version__, "device": device()}
    log(f"checker: {accuracy:.2%} of 2,000 held-out equations recomputed exactly")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return model, info


@torch.inference_mode()
def exact_accuracy(model: LlamaForCausalLM, n: int, seed: int) -> float:
    """Share of random equations whose result the checker's argmax reproduces digit for digit
    (teacher-forced, which for a causal LM is the same as greedy when every digit is right)."""
    b = batch(0, n, seed + 10_000)
    logits = model(input_ids=b["input_ids"]).logits[:, PREFIX - 1:-1]
    return (logits.argmax(-1) == b["input_ids"][:, PREFIX:]).all(-1).float().mean().item()


# --- checking steps -----------------------------------------------------------------------------------

class ArithmeticChecker:
    """P(the written result is right) for every equation in a step, from the trained checker."""

    def __init__(self, folder: str | Path, device: str | None = None):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
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

"""Training the lab PRM's arithmetic checker (the model itself, its layout and how a step is checked at
run time: reasoning/verifiers/arith_checker.py, which says why the lab PRM needs one).

The checker is a causal LM over the verifier's fixed-width, least-significant-digit-first layout,
trained on random true equations (free: no sampling); the loss is on the result digits only.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasoning.lab.train import ModelConfig, TrainConfig, device, train_loop
from reasoning.verifiers.arith_checker import BOS, IDS, LENGTH, PREFIX, VOCAB, WIDTH, encode


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


# --- random true equations in the checker's layout ----------------------------------------------------

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

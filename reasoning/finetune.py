"""Fine-tuning a causal LM on a handful of texts, then putting it back: the training half of
test-time training (reasoning/strategies/ttt.py), and the loss layout the lab-arc model is trained
with (reasoning/lab/arc.py), so a task is learnt at test time exactly as it was at pre-training.

A training text carries the character spans its loss is on (a task's output grids); everything
else is context. `adapted(model, ...)` trains a LoRA adapter through `peft` (any Hugging Face causal
LM) or all the weights (`method="full"`, for the tiny lab models), yields the training log while the
adapted weights are live, and restores the base model on exit, whatever happens inside: the base
weights are never changed by a task (tests/test_ttt.py hashes them).
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

IGNORE = -100
METHODS = ("lora", "full")


@dataclass(frozen=True)
class TrainText:
    text: str
    spans: tuple[tuple[int, int], ...]  # [start, end) character ranges that carry the loss


def encode(tokenizer, texts: list[TrainText], max_len: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels: a token carries loss when it starts inside a span. Texts
    longer than `max_len` tokens keep their end (the part with the test output)."""
    rows, labels = [], []
    for item in texts:
        enc = tokenizer(item.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc.input_ids, enc.offset_mapping
        lab = [i if any(a <= start < b for a, b in item.spans) else IGNORE for i, (start, _) in zip(ids, offsets)]
        if max_len is not None and len(ids) > max_len:
            ids, lab = ids[-max_len:], lab[-max_len:]
        rows.append(ids)
        labels.append(lab)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels]),
    }


@dataclass
class TrainLog:
    """What a test-time training did: loss per step, examples, tokens trained on (its FLOPs: 6 N D,
    reasoning.budget.flops), seconds."""

    method: str
    examples: int
    steps: int
    losses: list[float] = field(default_factory=list)
    tokens: int = 0  # real (unpadded) tokens through forward and backward, summed over steps
    trainable_params: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"method": self.method, "examples": self.examples, "steps": self.steps,
                "losses": [round(x, 5) for x in self.losses], "tokens": self.tokens,
                "trainable_params": self.trainable_params, "seconds": round(self.seconds, 3)}


@contextlib.contextmanager
def adapted(model, tokenizer, texts: list[TrainText], *, steps: int, lr: float, method: str = "lora",
            rank: int = 8, batch_size: int = 8, seed: int = 0, max_len: int | None = None,
            on_step: Callable[[int, float], None] | None = None) -> Iterator[TrainLog]:
    """Train `model` in place on `texts` for `steps` steps (batches drawn in a seeded order), yield
    the log while the trained weights are live, then restore the base weights. `on_step(step, loss)`
    is called after each step (1-based; the Learn page draws the loss falling)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    log = TrainLog(method, len(texts), steps)
    was_training = model.training
    grads = {name: p.requires_grad for name, p in model.named_parameters()}  # peft turns them off
    snapshot = None
    peft_model = None
    torch.manual_seed(seed)  # LoRA's initial A matrices
    if method == "full":
        snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
    else:
        from peft import LoraConfig, get_peft_model

        peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                      target_modules="all-linear", bias="none"))
        params = [p for p in peft_model.parameters() if p.requires_grad]
    log.trainable_params = sum(p.numel() for p in params)
    try:
        started = time.perf_counter()
        if steps > 0 and texts:
            _train(model, tokenizer, texts, params, log, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                   max_len=max_len, on_step=on_step)
        log.seconds = time.perf_counter() - started
        model.eval()
        yield log
    finally:
        if peft_model is not None:
            peft_model.unload()  # removes the LoRA layers (nothing merged): the base modules come back
        if snapshot is not None:
            with torch.no_grad():
                model.load_state_dict(snapshot)
        model.train(was_training)
        for name, p in model.named_parameters():
            p.grad = None
            p.requires_grad_(grads.get(name, p.requires_grad))


def _train(model, tokenizer, texts, params, log: TrainLog, *, steps, lr, batch_size, seed, max_len, on_step=None) -> None:
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng = random.Random(seed)
    order: list[int] = []
    model.train()
    with torch.enable_grad():
        for step in range(steps):
            picks = []
            while len(picks) < min(batch_size, len(texts)):
                if not order:
                    order = list(range(len(texts)))
                    rng.shuffle(order)
                picks.append(order.pop())
            batch = {k: v.to(device) for k, v in encode(tokenizer, [texts[i] for i in picks], max_len).items()}
            for group in optimizer.param_groups:  # cosine to a tenth, no warm-up: few steps
                group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            log.losses.append(float(loss.item()))
            log.tokens += int(batch["attention_mask"].sum())
            if on_step is not None:
                on_step(step + 1, log.losses[-1])

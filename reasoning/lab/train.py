"""Train the lab reasoner: a small LlamaForCausalLM learnt from scratch on generated arithmetic word
problems with step-by-step solutions (reasoning/lab/data.py). One readable file, nanoGPT style.

The schedule counts optimizer steps, not wall-clock time, and every random choice (weights, data
order, solution paths) derives from `seed`, so the same command reproduces the same checkpoint on
the same torch build. Loss is on the completion only: the model reads the question and learns to
write the solution.

    python -m reasoning lab train --out /tmp/lab
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from reasoning.lab import data
from reasoning.lab.tokenizer import train_tokenizer

IGNORE = -100  # label of the positions that carry no loss (prompt, padding)


@dataclass
class ModelConfig:
    """A ~1M-parameter Llama: big enough to learn 1-2 operations well, small enough to slip on 4-5."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384
    max_len: int = 768  # tokens; the longest level-5 example is ~350


@dataclass
class TrainConfig:
    steps: int = 900  # the first cosine cycle
    batch_size: int = 32
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 100
    # One warm restart (SGDR, Loshchilov & Hutter 2017) after `steps`: a second, gentler cosine cycle
    # with fresh optimizer moments. Fresh moments make a run that resumes from the end-of-cycle
    # checkpoint (`resume_from`) identical to one that never stopped.
    restart_steps: int = 400
    restart_lr: float = 1.5e-3
    restart_warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1  # never 0: seed 0 is the built-in evaluation set (data.py also skips its questions)
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    threads: int = 1  # one thread beat two by 7x per step when another process held the second core
    log_every: int = 50
    tokenizer_texts: int = 3000
    vocab_size: int = 768
    model: ModelConfig = field(default_factory=ModelConfig)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)  # weight init is the first random draw of a run
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len, rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def encode_batch(pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerFast, max_len: int,
                 loss_on_prompt: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels for (prompt, completion) pairs; labels ignore the prompt
    (unless asked) and the padding, so the loss measures only the solution the model writes."""
    rows, labels = [], []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        c = tokenizer(completion, add_special_tokens=False).input_ids
        ids = (p + c)[:max_len]
        rows.append(ids)
        labels.append((ids if loss_on_prompt else [IGNORE] * len(p) + c)[:max_len])
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [IGNORE] * (width - len(lab)) for lab in labels]),
    }


def total_steps(cfg: TrainConfig) -> int:
    return cfg.steps + cfg.restart_steps


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Per cycle: linear warm-up, then cosine decay to a tenth of the peak (min_lr in the first)."""
    if step < cfg.steps:
        s, length, peak, low, warmup = step, cfg.steps, cfg.lr, cfg.min_lr, cfg.warmup
    else:
        s, length, peak, low, warmup = step - cfg.steps, cfg.restart_steps, cfg.restart_lr, cfg.restart_lr / 10, \
            cfg.restart_warmup
    if s < warmup:
        return peak * (s + 1) / warmup
    progress = (s - warmup) / max(1, length - warmup)
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on norms (1-D tensors), as in nanoGPT.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def train_loop(model: LlamaForCausalLM, batches, cfg: TrainConfig, log=print, on_step=None,
               loss_fn=None, start_step: int = 0) -> list[float]:
    """The optimisation loop both lab models share: `batches(step)` gives the batch of a step,
    `loss_fn(model, batch)` its loss (default: the LM loss on the labels); `on_step(step, model)`
    runs after each step (checkpoints while exploring a schedule). Starting at the restart step
    continues a run from its end-of-first-cycle weights."""
    dev = next(model.parameters()).device
    model.train()
    losses, started = [], time.time()
    for step in range(start_step, total_steps(cfg)):
        if step in (start_step, cfg.steps):  # fresh moments at the start and at the warm restart
            optimizer = make_optimizer(model, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = {k: v.to(dev) for k, v in batches(step).items()}
        loss = loss_fn(model, batch) if loss_fn else model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if on_step:
            on_step(step, model)
        if log and (step % cfg.log_every == 0 or step == total_steps(cfg) - 1):
            recent = losses[-cfg.log_every:]
            log(f"step {step:5d}  loss {sum(recent) / len(recent):.4f}  lr {lr_at(step, cfg):.2e}  "
                f"{time.time() - started:6.0f} s")
    model.eval()
    return losses


def train_reasoner(cfg: TrainConfig, out: Path | None = None, log=print, on_step=None,
                   resume_from: Path | None = None) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, dict]:
    """Tokenizer, then model, then the step schedule; saves an HF folder to `out` when given.
    `resume_from`: the folder saved at the end of the first cycle (a run with restart_steps=0);
    training continues with the warm restart."""
    log = log or (lambda line: None)
    torch.set_num_threads(cfg.threads)
    started, cpu_started = time.time(), time.process_time()
    if resume_from is None:
        tokenizer = train_tokenizer(data.corpus_for_tokenizer(cfg.tokenizer_texts, cfg.seed), cfg.vocab_size)
        model = build_model(cfg.model, tokenizer, cfg.seed).to(device())
    else:
        tokenizer = AutoTokenizer.from_pretrained(resume_from)
        model = LlamaForCausalLM.from_pretrained(resume_from).to(device())
    n_params = sum(p.numel() for p in model.parameters())
    log(f"reasoner: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {total_steps(cfg)} steps x {cfg.batch_size}")

    def batches(step: int):
        first = step * cfg.batch_size
        level = data.batch_level(step, cfg.levels, cfg.seed)
        pairs = [data.training_example(i, level, cfg.seed) for i in range(first, first + cfg.batch_size)]
        return encode_batch(pairs, tokenizer, cfg.model.max_len)

    losses = train_loop(model, batches, cfg, log, on_step, start_step=0 if resume_from is None else cfg.steps)
    info = {"kind": "reasoner", "params": n_params, "train_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "examples": total_steps(cfg) * cfg.batch_size, "resumed_from_step": cfg.steps if resume_from else None,
            "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
    return model, tokenizer, info


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path, info: dict) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")

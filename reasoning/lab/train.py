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


# The ladder of lab reasoners (issue 16, "scale what?"): the same data stream and steps, only the size
# differs. m is the ModelConfig default, the committed `--model lab`; s is `lab-s`, xs is `lab-xs`.
# Every size keeps head_dim 32.
SIZES = {
    "xs": ModelConfig(d_model=64, n_layers=2, n_heads=2, d_ff=192),
    "s": ModelConfig(d_model=96, n_layers=3, n_heads=3, d_ff=288),
    "m": ModelConfig(),
}


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


def count_params(model: torch.nn.Module) -> dict[str, int]:
    """Total parameters and non-embedding ones (Kaplan et al. 2020: without the token embedding; the
    lab models tie it to the output layer, so it is counted once in the total)."""
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "non_embedding": total - model.get_input_embeddings().weight.numel()}


def pretrain_compute(params: dict[str, int], tokens: int) -> dict:
    """training.json's compute fields: C = 6 N D (Kaplan et al. 2020) with N the *total* parameters:
    the embedding is tied to the output layer, whose matmul every token pays (at these sizes it is
    10-33% of the parameters), so leaving it out would undercount the compute; the non-embedding
    variant is recorded beside it."""
    return {"params": params["total"], "params_non_embedding": params["non_embedding"], "train_tokens": tokens,
            "pretrain_flops": 6 * params["total"] * tokens,
            "pretrain_flops_non_embedding": 6 * params["non_embedding"] * tokens,
            "flops_formula": "6 * params (total) * train_tokens (prompt + completion tokens, no padding)"}


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


def reasoner_batch(step: int, cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    """The batch of training step `step`: a function of (seed, step, levels) only, so the stream can
    be regenerated without training (`stream_tokens`)."""
    first = step * cfg.batch_size
    level = data.batch_level(step, cfg.levels, cfg.seed)
    pairs = [data.training_example(i, level, cfg.seed) for i in range(first, first + cfg.batch_size)]
    return encode_batch(pairs, tokenizer, cfg.model.max_len)


def batch_tokens(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """Tokens a batch trains on: real ones (prompt + completion, D of 6ND), the loss-bearing ones
    (completion) and the padded positions the forward pass computes."""
    return {"tokens": int(batch["attention_mask"].sum()), "loss_tokens": int((batch["labels"] != IGNORE).sum()),
            "padded_tokens": batch["input_ids"].numel()}


def counting(make_batch):
    """`make_batch(step)` wrapped so that it also sums batch_tokens of every batch it gives into the
    returned `counts` (the training.json token fields)."""
    counts = {"tokens": 0, "loss_tokens": 0, "padded_tokens": 0}

    def batches(step: int):
        batch = make_batch(step)
        for k, v in batch_tokens(batch).items():
            counts[k] += v
        return batch
    return batches, counts


def stream_tokens(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast, start_step: int = 0) -> dict[str, int]:
    """The tokens of the run `cfg` describes, steps start_step..total_steps(cfg) - 1, counted by
    regenerating its seeded data stream without training (for a checkpoint whose run did not count
    them). Equals what train_reasoner counts while it trains."""
    counts = {"tokens": 0, "loss_tokens": 0, "padded_tokens": 0}
    for step in range(start_step, total_steps(cfg)):
        for k, v in batch_tokens(reasoner_batch(step, cfg, tokenizer)).items():
            counts[k] += v
    return counts


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
        shape = (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads,
                 model.config.intermediate_size)
        if shape != (cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.model.d_ff):
            raise ValueError(f"{resume_from} holds a model of d_model, layers, heads, d_ff = {shape}, not the "
                             f"configured {cfg.model}")
    params = count_params(model)
    log(f"reasoner: {params['total'] / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {total_steps(cfg)} steps x {cfg.batch_size}")
    batches, counts = counting(lambda step: reasoner_batch(step, cfg, tokenizer))
    losses = train_loop(model, batches, cfg, log, on_step, start_step=0 if resume_from is None else cfg.steps)
    earlier = _earlier_tokens(resume_from, cfg, tokenizer) if resume_from is not None else dict.fromkeys(counts, 0)
    info = {"kind": "reasoner", **pretrain_compute(params, earlier["tokens"] + counts["tokens"]),
            "train_loss_tokens": earlier["loss_tokens"] + counts["loss_tokens"],
            "train_padded_tokens": earlier["padded_tokens"] + counts["padded_tokens"],
            "run_train_tokens": counts["tokens"],
            "train_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "examples": total_steps(cfg) * cfg.batch_size, "resumed_from_step": cfg.steps if resume_from else None,
            "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
    return model, tokenizer, info


def _earlier_tokens(resume_from: Path, cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Tokens of the run that saved `resume_from` (the steps before cfg.steps): its training.json's
    counts, or its stream regenerated from the config it recorded."""
    path = Path(resume_from) / "training.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    if "train_tokens" in saved:
        return {"tokens": saved["train_tokens"], "loss_tokens": saved["train_loss_tokens"],
                "padded_tokens": saved["train_padded_tokens"]}
    earlier = TrainConfig(**{**asdict(cfg), "model": cfg.model, "steps": cfg.steps, "restart_steps": 0,
                             "levels": tuple(saved.get("config", {}).get("levels", TrainConfig.levels))})
    return stream_tokens(earlier, tokenizer)


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path, info: dict) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")

"""Train lab-arc: a small Llama that solves arclab tasks in context (reasoning/arclab.py), the model
test-time training adapts (issue 19). It reads a task's demonstrations and test input as text
(reasoning.fewshot.render) and writes the output row, then a blank line.

It trains on the train split only: single primitives and 17 of the 24 pairs of primitives; the 7
held-out pairs (arclab.HELD_OUT, the `arclab:test` set) are never seen, so on them the model must
compose what it knows from the demonstrations alone, or learn the composition from them at test time.

    python -m reasoning lab train --arc-only [--arc-steps K] [--out DIR]
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from reasoning import arclab
from reasoning.finetune import TrainText, encode
from reasoning.lab.tokenizer import EOS, train_tokenizer
from reasoning.lab.train import (ModelConfig, TrainConfig, build_model, counting, count_params, device,
                                 pretrain_compute, save, total_steps, train_loop)

# The task is the whole prompt: the model continues it (no chat wrapper, no system prompt). Prompts
# reach a template stripped (reasoning/backends/prompts.chat_prompt), and a rendered task ends with
# "output:" and a newline: the template gives the newline back, so the model reads what it trained on.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{{ message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}{{ message['content'] + '" + EOS + "' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass
class ArcConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2000, batch_size=64, lr=2e-3, min_lr=2e-4, warmup=100, restart_steps=0,
        model=ModelConfig(d_model=128, n_layers=4, n_heads=4, d_ff=384, max_len=320), log_every=100))
    tokenizer_texts: int = 2000
    vocab_size: int = 300


def training_text(index: int, seed: int) -> TrainText:
    """A train-split task as one text, its loss on every output grid (each demonstration's output is
    predicted from the ones before it: the model learns to infer the program in context)."""
    return TrainText(*arclab.training_text(index, seed))


def arc_batch(step: int, cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    """Step `step`'s batch: a function of (seed, step) only."""
    first = step * cfg.batch_size
    return encode(tokenizer, [training_text(i, cfg.seed) for i in range(first, first + cfg.batch_size)],
                  cfg.model.max_len)


def make_tokenizer(cfg: ArcConfig) -> PreTrainedTokenizerFast:
    texts = [arclab.training_text(i, cfg.train.seed)[0] for i in range(cfg.tokenizer_texts)]
    tokenizer = train_tokenizer(texts, cfg.vocab_size)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def train_arc(cfg: ArcConfig, out: Path | None = None, log=print, on_step=None
              ) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, dict]:
    log = log or (lambda line: None)
    tc = cfg.train
    torch.set_num_threads(tc.threads)
    started, cpu_started = time.time(), time.process_time()
    tokenizer = make_tokenizer(cfg)
    model = build_model(tc.model, tokenizer, tc.seed).to(device())
    params = count_params(model)
    log(f"lab-arc: {params['total'] / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {total_steps(tc)} steps x {tc.batch_size}")
    batches, counts = counting(lambda step: arc_batch(step, tc, tokenizer))
    losses = train_loop(model, batches, tc, log, on_step)
    info = {"kind": "arc", **pretrain_compute(params, counts["tokens"]),
            "train_loss_tokens": counts["loss_tokens"], "train_padded_tokens": counts["padded_tokens"],
            "train_seconds": round(time.time() - started, 1), "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "examples": total_steps(tc) * tc.batch_size, "held_out_pairs": sorted("+".join(p) for p in arclab.HELD_OUT),
            "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
    return model, tokenizer, info

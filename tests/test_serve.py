"""`python -m reasoning serve` (thinktrace/serve.py): the real server on a free port, in this process,
driven by the official `openai` client. The lab model is tiny, so every request runs in well under a
second; the request → run mapping, auth and limits are checked without a model."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from reasoning.errors import UserError
from thinktrace import serve as srv

QUESTION = "Ann has 3 apples. She buys 4 more. How many apples does she have now?"


# ---------------------------------------------------------------- without a model


@pytest.mark.parametrize("name, expected", [
    ("lab", {}), ("thinktrace", {}), ("best_of_n@8/lab", {"strategy": "best_of_n", "n": 8}),
    ("beam_search/lab", {"strategy": "beam_search"}), ("self_consistency@16", {"strategy": "self_consistency", "n": 16}),
])
def test_the_model_name_convention(name, expected):
    assert srv.parse_model_name(name, "lab") == expected


@pytest.mark.parametrize("name, status, says", [
    ("best_of_n@8/gpt-4", 404, "not served here"), ("nope@8/lab", 400, "unknown strategy 'nope'"),
    ("best_of_n@x/lab", 400, "whole number"), ("gpt-4", 404, "unknown strategy"), ("", 400, "model"),
])
def test_a_bad_model_name_is_one_clear_error(name, status, says):
    with pytest.raises(srv.ApiError) as caught:
        srv.parse_model_name(name, "lab")
    assert caught.value.status == status and says in caught.value.message


def test_off_localhost_the_server_needs_a_key():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        srv.check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        with pytest.raises(UserError, match="THINKTRACE_API_KEY"):
            srv.check_bind(host, None)
        srv.check_bind(host, "sk-secret")
    assert srv.authorized(None, None) and srv.authorized("Bearer x", None)
    assert srv.authorized("Bearer sk-secret", "sk-secret") and srv.authorized("bearer sk-secret", "sk-secret")
    assert not srv.authorized(None, "sk-secret") and not srv.authorized("Bearer sk-wrong", "sk-secret")
    assert not srv.authorized("sk-secret", "sk-secret")


def _chat(**fields) -> bytes:
    return json.dumps({"model": "lab", "messages": [{"role": "user", "content": QUESTION}], **fields}).encode()


def test_a_request_becomes_a_run_request_with_the_cli_knobs():
    defaults = srv.Defaults(model="lab", strategy="cot", knobs={"temperature": 0.7})
    ask = srv.parse(_chat(model="best_of_n@8/lab", max_tokens=100, thinktrace={"beam_width": 2, "gold": 7}),
                    "chat.completion", defaults)
    request = ask.request
    assert (request.strategy, request.config.n, request.verifier, request.config.max_new_tokens) == ("best_of_n", 8, "prm:lab", 100)
    assert request.config.temperature == 0.7 and request.config.beam_width == 2 and ask.gold == "7"
    assert ask.question == QUESTION and request.dataset == "serve"
    extra = srv.parse(_chat(model="best_of_n@8/lab", thinktrace={"strategy": "self_consistency", "n": 3}),
                      "chat.completion", defaults).request
    assert (extra.strategy, extra.config.n, extra.verifier) == ("self_consistency", 3, None)  # the body object wins
    text = srv.parse(json.dumps({"model": "lab", "prompt": ["What is 2 + 2?"]}).encode(), "text_completion", defaults)
    assert text.question == "What is 2 + 2?" and text.request.strategy == "cot"


@pytest.mark.parametrize("body, says", [
    (_chat(thinktrace={"strategy": "best_of_n", "n": 10**6}), "n = 1000000 is over this server's limit of 64"),
    (_chat(thinktrace={"n": 0}), "--n must be at least 1 (got 0)"),
    (_chat(thinktrace={"n": "eight"}), "thinktrace.n must be int"),
    (_chat(thinktrace={"strategy": "nope"}), "unknown strategy 'nope'"),
    (_chat(thinktrace={"colour": "red"}), "unknown thinktrace field 'colour'"),
    (_chat(thinktrace={"strategy": "beam_search", "n": 6, "beam_width": 4}), "multiple"),
    (_chat(thinktrace={"strategy": "best_of_n", "verifier": None}), "needs a verifier"),
    (_chat(max_tokens=10**5), "max_new_tokens = 100000 is over"),
    (_chat(n=2), "one choice per request"),
    (b'{"model": "lab", "messages": [', "not valid JSON"),
    (b'{"model": "lab", "messages": [], "temperature": NaN}', "request body"),
    (json.dumps({"model": "lab", "messages": [{"role": "system", "content": "hi"}]}).encode(), "no message with role"),
    (json.dumps({"model": "lab"}).encode(), "messages"),
    (_chat(thinktrace={"verifier": "oracle"}, model="best_of_n/lab"), "oracle verifier needs gold answers"),
])
def test_a_bad_request_is_one_clear_message(body, says):
    defaults = srv.Defaults(model="lab")
    with pytest.raises((srv.ApiError, UserError)) as caught:
        srv.parse(body, "chat.completion", defaults)
    message = getattr(caught.value, "message", str(caught.value))
    assert says in message and "\n" not in message


# ---------------------------------------------------------------- the real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """serve's app and worker under uvicorn, in a thread of this process."""

    def __init__(self, store, defaults: srv.Defaults, api_key: str | None = None, concurrency: int = 16,
                 queue_size: int = 64):
        import uvicorn

        self.store, self.port = store, free_port()
        self.worker = srv.load_worker(store, defaults, concurrency, queue_size)
        self.server = uvicorn.Server(uvicorn.Config(srv.create_app(self.worker, defaults, api_key), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def client(self, **kwargs):
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=kwargs.pop("api_key", "none"), max_retries=0, **kwargs)

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": "application/json",
                                                                              **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from store import Store

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('serve') / 'thinktrace.db'}")
    with Served(store, srv.Defaults(model="lab", strategy="cot")) as server:
        yield server


def stored(store, run_id: str, position: int):
    from store.runs import run_results, tree_nodes

    result = next(r for r in run_results(store, run_id) if r.position == position)
    return result, tree_nodes(store, run_id, result.problem_id)


def counts(store) -> tuple[int, int]:
    from store.runs import list_runs

    rows = list_runs(store)
    return len(rows), sum(r.problems_total for r in rows)


@pytest.mark.slow
def test_a_chat_completion_with_the_extra_body_is_answered_and_stored_with_its_tree(served):
    client = served.client()
    response = client.chat.completions.create(
        model="lab", messages=[{"role": "user", "content": QUESTION}],
        extra_body={"thinktrace": {"strategy": "best_of_n", "n": 4, "verifier": "prm:lab", "gold": "7"}})
    extra = response.model_extra["thinktrace"]
    assert response.object == "chat.completion" and response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content and response.choices[0].finish_reason == "stop"
    result, nodes = stored(served.store, extra["run_id"], extra["position"])
    assert result.question == QUESTION and result.gold == "7" and result.correct == extra["correct"]
    assert result.answer == extra["answer"] and result.node_seq == extra["node"]
    assert len([n for n in nodes if n.depth == 1]) == 4  # every sample's path is in the tree
    assert response.usage.completion_tokens == result.tokens > 0 and response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert extra["tree_url"] == f"/tree?run={extra['run_id']}&problem={extra['position'] + 1}&node={extra['node']}"
    from store.runs import get_run

    run = get_run(served.store, extra["run_id"])
    assert run.dataset == "serve" and run.strategy == "best_of_n" and run.params["n"] == 4 and run.status == "running"
    assert run.name.startswith("best_of_n n=4 prm:lab on serve ")


@pytest.mark.slow
def test_the_model_name_picks_the_strategy_and_same_settings_share_a_run(served):
    client = served.client()
    first = client.chat.completions.create(model="self_consistency@3/lab", messages=[{"role": "user", "content": QUESTION}])
    second = client.completions.create(model="self_consistency@3/lab", prompt="What is 5 + 6?")
    a, b = first.model_extra["thinktrace"], second.model_extra["thinktrace"]
    assert a["strategy"] == b["strategy"] == "self_consistency" and a["run_id"] == b["run_id"]
    assert b["position"] == a["position"] + 1 and second.object == "text_completion" and second.choices[0].text
    result, nodes = stored(served.store, b["run_id"], b["position"])
    assert result.question == "What is 5 + 6?" and len([n for n in nodes if n.depth == 1]) == 3


@pytest.mark.slow
def test_streaming_sends_the_answer_in_chunks_then_done(served):
    client = served.client()
    chunks = list(client.chat.completions.create(model="best_of_n@2/lab", messages=[{"role": "user", "content": QUESTION}],
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = [c for c in chunks if c.choices][-1]
    assert chunks[0].choices[0].delta.role == "assistant" and last.choices[0].finish_reason == "stop"
    extra = last.model_extra["thinktrace"]
    result, nodes = stored(served.store, extra["run_id"], extra["position"])
    path = {n.seq: n for n in nodes}
    assert text and text.endswith(path[result.node_seq].text)
    assert chunks[-1].usage.completion_tokens == result.tokens  # the usage chunk comes last
    # the raw stream ends as OpenAI's does
    request = urllib.request.Request(served.url + "/v1/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"model": "lab", "prompt": "What is 2 + 2?", "stream": True}).encode())
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream") and raw.endswith("data: [DONE]\n\n")
    assert json.loads(raw.split("\n\n")[0][len("data: "):])["object"] == "text_completion"


@pytest.mark.slow
def test_models_and_health(served):
    ids = [m.id for m in served.client().models.list()]
    assert ids[0] == "lab" and "best_of_n/lab" in ids and "beam_search/lab" in ids
    with urllib.request.urlopen(served.url + "/health", timeout=10) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok" and health["model"] == "lab"


@pytest.mark.slow
def test_bad_requests_get_4xx_with_one_message_and_leave_the_store_unchanged(served):
    from openai import BadRequestError, NotFoundError, RateLimitError

    client = served.client()
    before = counts(served.store)
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(model="lab", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"thinktrace": {"strategy": "best_of_n", "n": 10**6}})
    assert caught.value.body["message"] == "n = 1000000 is over this server's limit of 64"
    assert caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(BadRequestError, match="unknown strategy 'nope'"):
        client.chat.completions.create(model="lab", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"thinktrace": {"strategy": "nope"}})
    with pytest.raises(NotFoundError, match="not served here"):
        client.chat.completions.create(model="best_of_n@4/gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    status, body = served.post("/v1/chat/completions", b'{"model": "lab", "messages": [{"role": ')
    assert status == 400 and body["error"]["message"].startswith("request body: not valid JSON")
    limit = srv.MAX_BODY_BYTES
    srv.MAX_BODY_BYTES = 1000  # (a 1 MB body is refused before it is read, and the client's send breaks)
    try:
        status, body = served.post("/v1/chat/completions", b"x" * 2000)
    finally:
        srv.MAX_BODY_BYTES = limit
    assert status == 413 and body["error"]["message"] == "request body over 1000 bytes"
    status, body = served.post("/v1/chat/completions", _chat(thinktrace={"verifier": "prm:somebody/else"},
                                                             model="best_of_n/lab"))
    assert status == 400 and "not loaded on this server" in body["error"]["message"]
    capacity = served.worker.capacity
    served.worker.capacity = 0  # a full queue
    try:
        with pytest.raises(RateLimitError, match="busy"):
            client.chat.completions.create(model="lab", messages=[{"role": "user", "content": QUESTION}])
    finally:
        served.worker.capacity = capacity
    assert counts(served.store) == before


@pytest.mark.slow
def test_sixteen_concurrent_requests_share_batches_and_are_all_stored(served):
    client = served.client()
    merged_before = served.worker.scheduler.stats.merged["complete"]

    def ask(i):
        return client.chat.completions.create(model="best_of_n@4/lab",
                                              messages=[{"role": "user", "content": f"What is {i} + {i + 3}?"}],
                                              extra_body={"thinktrace": {"gold": str(2 * i + 3)}})
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(ask, range(16)))
    extras = [r.model_extra["thinktrace"] for r in responses]
    assert len({(e["run_id"], e["position"]) for e in extras}) == 16 and len({e["run_id"] for e in extras}) == 1
    for i, e in enumerate(extras):
        result, nodes = stored(served.store, e["run_id"], e["position"])
        assert result.question == f"What is {i} + {i + 3}?" and result.answer == e["answer"]
        assert len([n for n in nodes if n.depth == 1]) == 4
    # their model calls were merged: far fewer merged calls than requests
    assert served.worker.scheduler.stats.merged["complete"] - merged_before < 16


@pytest.mark.slow
def test_a_client_that_leaves_mid_request_loses_nothing(served):
    from store.runs import run_results

    body = _chat(model="self_consistency@64/lab", stream=True)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"assistant" not in received:  # the first chunk, then the client is gone
            part = conn.recv(4096)
            assert part, received
            received += part
    deadline = time.monotonic() + 60
    while served.worker.open:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_id = next(r for key, r in served.worker.runs.items() if key[2] == "self_consistency" and '"n": 64' in key[4])
    [result] = run_results(served.store, run_id)
    assert result.question == QUESTION and result.tokens > 0
    _, nodes = stored(served.store, run_id, result.position)
    assert len([n for n in nodes if n.depth == 1]) == 64


@pytest.mark.slow
def test_a_key_is_required_when_set_and_shutdown_marks_the_runs(tmp_path):
    from openai import AuthenticationError

    from store import Store
    from store.runs import get_run

    store = Store(f"sqlite:///{tmp_path / 'thinktrace.db'}")
    with Served(store, srv.Defaults(model="lab"), api_key="sk-secret") as server:
        with pytest.raises(AuthenticationError, match="API key"):
            server.client(api_key="sk-wrong").models.list()
        status, body = server.post("/v1/completions", json.dumps({"model": "lab", "prompt": "What is 1 + 1?"}).encode())
        assert status == 401 and body["error"]["type"] == "authentication_error"
        response = server.client(api_key="sk-secret").completions.create(model="lab", prompt="What is 1 + 1?")
        run_id = response.model_extra["thinktrace"]["run_id"]
        assert get_run(store, run_id).status == "running"
    assert get_run(store, run_id).status == "done"  # a graceful stop: every request finished


def test_proxy_mode_serves_an_upstream_openai_server(tmp_path):
    """--backend openai: ThinkTrace in front of another OpenAI-compatible server (the fake one)."""
    from test_openai_backend import MODEL, FakeServer

    from store import Store

    store = Store(f"sqlite:///{tmp_path / 'thinktrace.db'}")
    with FakeServer() as upstream:
        defaults = srv.Defaults(model=MODEL, strategy="self_consistency", knobs={"n": 2}, backend="openai",
                                backend_options={"base_url": upstream.url})
        with Served(store, defaults) as server:
            response = server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "What is 2 + 3?"}])
        assert upstream.requests and response.model_extra["thinktrace"]["strategy"] == "self_consistency"
    assert response.choices[0].message.content.endswith("The answer is 5.") or response.model_extra["thinktrace"]["answer"] in ("5", "6")


def test_the_run_page_shows_the_serve_command_and_a_curl_example(tmp_path, monkeypatch):
    from test_app import open_page

    monkeypatch.setenv("THINKTRACE_DB", f"sqlite:///{tmp_path / 'thinktrace.db'}")
    monkeypatch.delenv("THINKTRACE_READONLY", raising=False)
    at = open_page("pages/run.py")
    [box] = [e for e in at.expander if "OpenAI-compatible" in e.label]
    code = " ".join(c.value for c in box.code)
    assert "python -m reasoning serve --model lab" in code and "curl -s http://127.0.0.1:8000/v1/chat/completions" in code
    assert '"thinktrace": {"strategy": "best_of_n"' in code

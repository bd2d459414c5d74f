"""Drives a real `tollgate serve` (in front of `tollgate mock-upstream`, which
records what it receives) with the official `openai` SDK."""

import hashlib
import json
import math
import subprocess
import time
import urllib.request

import openai
import pytest

from harness import BIN, TIMEOUT, Proc, field, stack

KEY = "tg-python-sdk-test-key"
UPSTREAM_KEY = "upstream-secret"
PROMPT = "say something about gateways please"
EMBED_INPUTS = ["first input text", "second", "a third one"]

# What the tests sent to `chat-up`, checked against the ledger at the end.
TALLY = {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}


def words(text):  # the mock's token = one whitespace-separated word
    return len(text.split())


def tally(prompt_tokens=0, completion_tokens=0, error=False):
    TALLY["requests"] += 1
    TALLY["errors"] += int(error)
    TALLY["input_tokens"] += prompt_tokens
    TALLY["output_tokens"] += completion_tokens


CONFIG = """\
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: sqlite://{db}
providers:
  - {{name: up, kind: openai, base_url: "http://{mock}/v1", api_key: {upstream_key}, forward_headers: ["x-mock-*"]}}
  - {{name: local, kind: mock}}
models:
  - {{name: chat-up, provider: up, upstream_model: mock-chat}}
  - {{name: embed-up, provider: up, upstream_model: mock-embed, endpoints: [embeddings]}}
  - {{name: chat-local, provider: local}}
  - {{name: secret-model, provider: local}}
keys:
  - id: py
    hash: "sha256:{hash}"
    principal: py-user
    kind: user
    groups: [g1]
    models: ["chat-*", "embed-*"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    def config(mock_addr, db):
        return CONFIG.format(db=db, mock=mock_addr, upstream_key=UPSTREAM_KEY,
                             hash=hashlib.sha256(KEY.encode()).hexdigest())

    with stack(tmp_path_factory.mktemp("tollgate"), ["--require-key", UPSTREAM_KEY],
               config) as s:
        yield {**s, "base": s["host"] + "/v1"}


@pytest.fixture(scope="module")
def client(gw):
    return openai.OpenAI(base_url=gw["base"], api_key=KEY, max_retries=0, timeout=TIMEOUT)


def chat(client, model="chat-up", prompt=PROMPT, **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **kw)


def upstream_requests(gw, path="/v1/chat/completions"):
    with urllib.request.urlopen(f"{gw['mock']}/_mock/requests", timeout=TIMEOUT) as r:
        return [e for e in json.load(r) if e["path"] == path]


def test_chat_non_streaming(client):
    r = chat(client)
    tally(r.usage.prompt_tokens, r.usage.completion_tokens)
    text = r.choices[0].message.content
    assert isinstance(text, str) and text.strip()
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.model == "mock-chat"
    assert r.usage.completion_tokens == 16 == words(text)
    assert r.usage.prompt_tokens == words(PROMPT)
    assert r.usage.total_tokens == 16 + words(PROMPT)


def test_stream_with_usage_matches_non_stream(client):
    prompt = "streamed answers must equal whole ones"
    whole = chat(client, prompt=prompt)
    tally(whole.usage.prompt_tokens, whole.usage.completion_tokens)
    chunks = list(chat(client, prompt=prompt, stream=True,
                       stream_options={"include_usage": True}))
    tally(words(prompt), 16)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == words(prompt)
    assert last.usage.completion_tokens == 16
    assert all(c.usage is None for c in chunks[:-1])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_stream_without_usage_strips_gateway_usage_chunk(client, gw):
    prompt = "no usage was asked for here"
    chunks = list(chat(client, prompt=prompt, stream=True))
    tally(words(prompt), 16)
    assert chunks, "empty stream"
    assert all(c.usage is None for c in chunks), [c.usage for c in chunks]
    assert all(c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert words(text) == 16
    # The gateway asked the upstream for usage itself (and hid it from us).
    sent = upstream_requests(gw)[-1]["body"]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_embeddings_base64_default(client, gw):
    inputs = EMBED_INPUTS
    r = client.embeddings.create(model="embed-up", input=inputs, dimensions=8)
    assert len(r.data) == len(inputs)
    assert [d.index for d in r.data] == [0, 1, 2]
    for d in r.data:
        assert len(d.embedding) == 8
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-4)
    assert r.usage.prompt_tokens == sum(words(i) for i in inputs)
    body = upstream_requests(gw, "/v1/embeddings")[-1]["body"]
    assert body["model"] == "mock-embed"
    assert body["encoding_format"] == "base64"
    assert body["dimensions"] == 8


def test_models_list_shows_only_granted(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["chat-up", "embed-up", "chat-local"]
    assert "secret-model" not in ids


def test_unknown_key_is_401(gw):
    bad = openai.OpenAI(base_url=gw["base"], api_key="tg-not-a-key", max_retries=0, timeout=TIMEOUT)
    with pytest.raises(openai.AuthenticationError) as e:
        chat(bad)
    assert e.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_forbidden_model_is_403(client):
    with pytest.raises(openai.PermissionDeniedError) as e:
        chat(client, model="secret-model")
    assert e.value.status_code == 403
    assert e.value.code == "model_not_allowed"
    assert "secret-model" in str(e.value)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, model="no-such-model")
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"


def test_raw_response_headers(client):
    raw = client.with_raw_response.chat.completions.create(
        model="chat-up", messages=[{"role": "user", "content": PROMPT}])
    r = raw.parse()
    tally(r.usage.prompt_tokens, r.usage.completion_tokens)
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-tollgate-resolved-model") == "up/mock-chat"
    echoed = client.with_raw_response.chat.completions.create(
        model="chat-local", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": "py-req-1"})
    assert echoed.headers.get("x-request-id") == "py-req-1"
    assert echoed.headers.get("x-tollgate-resolved-model") == "local/chat-local"
    # The in-process mock provider answers exactly like the remote mock.
    assert echoed.parse().choices[0].message.content == r.choices[0].message.content


def test_upstream_503_becomes_502(client, gw):
    before = len(upstream_requests(gw))
    with pytest.raises(openai.InternalServerError) as e:
        chat(client, extra_headers={"x-mock-status": "503"})
    tally(error=True)
    assert e.value.status_code == 502
    msg = str(e.value)
    assert "up" in msg and "503" in msg, msg
    sent = upstream_requests(gw)
    assert len(sent) == before + 1  # reached the upstream once: no hidden retry
    assert sent[-1]["headers"]["x-mock-status"] == "503"


def test_upstream_sees_gateway_credential_and_untouched_body(client, gw):
    r = chat(client, extra_body={"x_custom_field": {"a": 1}},
             extra_headers={"x-not-forwarded": "1", "x-mock-tokens": "5"})
    tally(r.usage.prompt_tokens, r.usage.completion_tokens)
    assert r.usage.completion_tokens == 5  # x-mock-* is forwarded
    last = upstream_requests(gw)[-1]
    assert last["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert KEY not in json.dumps(last["headers"])
    assert "x-not-forwarded" not in last["headers"]
    assert last["headers"]["x-mock-tokens"] == "5"
    assert last["body"]["model"] == "mock-chat"
    assert last["body"]["x_custom_field"] == {"a": 1}
    assert last["body"]["messages"] == [{"role": "user", "content": PROMPT}]


def test_usage_ledger_matches(gw):
    """Runs last: the ledger flushes every 200 ms, so poll briefly."""
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(
            [BIN, "usage", "--db", gw["db"], "--by", "model", "--format", "json"],
            capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
        rows = {row["key"]: row for row in json.loads(out)["rows"]}
        row = rows.get("chat-up", {"requests": 0})
        if row["requests"] >= TALLY["requests"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert TALLY["requests"] > 0, "run the whole module: the tally is empty"
    got = {k: row.get(k) for k in TALLY}
    assert got == TALLY, f"ledger {rows}"
    assert rows["secret-model"]["errors"] == rows["secret-model"]["requests"] == 1
    assert rows["secret-model"]["input_tokens"] == 0
    assert rows["embed-up"]["requests"] == 1
    assert rows["embed-up"]["input_tokens"] == sum(words(i) for i in EMBED_INPUTS)

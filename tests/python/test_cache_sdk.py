"""The response cache shared through a real `redis-server` by two real
`tollgate serve` processes, driven with the official `openai` SDK: an answer
cached by one gateway is a hit on the other, and a cached stream replays as a
stream the SDK parses (with the usage chunk only when asked for)."""

import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request

import openai
import pytest

from test_openai_sdk import BIN, KEY, TIMEOUT, UPSTREAM_KEY, Proc, field

CONFIG = """\
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: sqlite://{db}
providers:
  - {{name: up, kind: openai, base_url: "http://{mock}/v1", api_key: {upstream_key}}}
models:
  - {{name: chat-up, provider: up, upstream_model: mock-chat, cache: {{ttl: 5m}},
      price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
keys:
  - id: py
    hash: "sha256:{hash}"
    principal: py-user
    models: ["chat-*"]
cache:
  backend: redis
  redis_url: redis://127.0.0.1:{redis_port}/0
  redis_prefix: "tollgate-test:{run}:"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port():
    exe = shutil.which("redis-server")
    assert exe, "redis-server is required (Debian: apt-get install -y redis-server; .ci/run installs it)"
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if "Ready to accept connections" in line:
                break
            assert line or p.poll() is None, "redis-server exited"
        else:
            raise AssertionError("redis-server did not start")
        yield port
    finally:
        p.terminate()
        p.wait(timeout=10)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, redis_port):
    tmp = tmp_path_factory.mktemp("tollgate-cache")
    mock = Proc(["mock-upstream", "--listen", "127.0.0.1:0", "--require-key", UPSTREAM_KEY])
    procs = []
    try:
        mock_addr = field(mock.wait_for("mock upstream listening"), "addr")
        cfg = tmp / "tollgate.yaml"
        cfg.write_text(CONFIG.format(db=tmp / "t.db", mock=mock_addr, upstream_key=UPSTREAM_KEY,
                                     hash=hashlib.sha256(KEY.encode()).hexdigest(),
                                     redis_port=redis_port, run=time.time_ns()))
        bases = []
        for _ in range(2):
            gw = Proc(["serve", "--config", str(cfg)])
            procs.append(gw)
            line = gw.wait_for("tollgate listening")
            logged(gw, "response cache connected to redis")
            bases.append(f"http://{field(line, 'addr')}/v1")
        yield {"bases": bases, "mock": f"http://{mock_addr}", "redis_port": redis_port}
    finally:
        codes = [gw.stop() for gw in procs]
        mock.stop()
        assert codes == [0] * len(procs), f"gateway exit codes {codes}"


def logged(proc, marker):
    """Waits for a line logged at any time (before or after the last wait_for)."""
    deadline = time.monotonic() + TIMEOUT
    while not any(marker in line for line in list(proc.log)):
        assert time.monotonic() < deadline, f"no {marker!r}; stderr:\n{''.join(proc.log)}"
        time.sleep(0.02)


def sdk(base):
    return openai.OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=TIMEOUT)


def upstream_calls(gw, prompt):
    with urllib.request.urlopen(f"{gw['mock']}/_mock/requests", timeout=TIMEOUT) as r:
        return sum(1 for e in json.load(r)
                   if e["path"] == "/v1/chat/completions"
                   and e["body"]["messages"][-1]["content"] == prompt)


def dbsize(port):
    """`DBSIZE` over RESP: how many keys the shared Redis holds."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
        reply = s.recv(64)
    assert reply.startswith(b":"), reply
    return int(reply[1:].split(b"\r\n")[0])


def until_stored(gw, before):
    """Stores are written after the answer, off the request path: wait until
    the entry has landed in Redis, so the other gateway's first try must hit."""
    for _ in range(100):
        if dbsize(gw["redis_port"]) > before:
            return
        time.sleep(0.025)
    raise AssertionError("no entry stored in Redis within 2.5 s")


def hit(raw):
    assert raw.headers.get("x-tollgate-cache") == "hit", raw.headers
    return raw


def test_answer_cached_by_one_gateway_is_a_hit_on_the_other(gateways):
    a, b = (sdk(u) for u in gateways["bases"])
    prompt = "shared between gateways"
    msgs = [{"role": "user", "content": prompt}]
    before = dbsize(gateways["redis_port"])
    first = a.chat.completions.with_raw_response.create(model="chat-up", messages=msgs, temperature=0)
    assert first.headers["x-tollgate-cache"] == "miss"
    until_stored(gateways, before)
    second = hit(b.chat.completions.with_raw_response.create(
        model="chat-up", messages=msgs, temperature=0))
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().usage.total_tokens == first.parse().usage.total_tokens
    assert upstream_calls(gateways, prompt) == 1


def collect(stream):
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, usage, finish


def test_stream_replay_is_parsed_by_the_sdk(gateways):
    a, b = (sdk(u) for u in gateways["bases"])
    prompt = "stream me from the cache"
    msgs = [{"role": "user", "content": prompt}]
    before = dbsize(gateways["redis_port"])
    live = a.chat.completions.with_raw_response.create(
        model="chat-up", messages=msgs, stream=True, stream_options={"include_usage": True})
    assert live.headers["x-tollgate-cache"] == "miss"
    live_text, live_usage, live_finish = collect(live.parse())
    assert live_text and live_usage is not None

    until_stored(gateways, before)
    replay = hit(b.chat.completions.with_raw_response.create(
        model="chat-up", messages=msgs, stream=True, stream_options={"include_usage": True}))
    assert replay.headers["content-type"].startswith("text/event-stream")
    text, usage, finish = collect(replay.parse())
    assert (text, finish) == (live_text, live_finish)
    assert usage.prompt_tokens == live_usage.prompt_tokens
    assert usage.completion_tokens == live_usage.completion_tokens

    # Not asked for: no usage chunk in the replay.
    plain = b.chat.completions.with_raw_response.create(model="chat-up", messages=msgs, stream=True)
    assert plain.headers["x-tollgate-cache"] == "hit"
    assert collect(plain.parse()) == (live_text, None, live_finish)
    assert upstream_calls(gateways, prompt) == 1


def test_redis_expiry_follows_the_per_request_ttl(gateways):
    a, b = (sdk(u) for u in gateways["bases"])
    prompt = "short lived answer"
    msgs = [{"role": "user", "content": prompt}]
    ttl = {"x-tollgate-cache-ttl": "1500ms"}
    before = dbsize(gateways["redis_port"])
    first = a.chat.completions.with_raw_response.create(model="chat-up", messages=msgs,
                                                        extra_headers=ttl)
    assert first.headers["x-tollgate-cache"] == "miss"
    until_stored(gateways, before)
    hit(b.chat.completions.with_raw_response.create(model="chat-up", messages=msgs))
    time.sleep(1.6)
    later = b.chat.completions.with_raw_response.create(model="chat-up", messages=msgs)
    assert later.headers["x-tollgate-cache"] == "miss", "expired in Redis"
    assert upstream_calls(gateways, prompt) == 2

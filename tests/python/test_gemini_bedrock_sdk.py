"""The official `openai` SDK through a real `tollgate serve` whose providers
are `kind: gemini` and `kind: bedrock`, in front of `tollgate mock-upstream`
speaking Gemini's JSON/SSE and Bedrock's Converse with its binary event
stream. The mock requires the Gemini API key and a SigV4 signature, which it
recomputes with the AWS secret (`--require-key KEYID:SECRET`; Gemini is given
that same string as its key)."""

import hashlib
import json
import math
import urllib.request
from pathlib import Path

import openai
import pytest

from test_openai_sdk import BIN, TIMEOUT, Proc, field, words

KEY = "tg-python-providers-key"
AWS_KEY_ID = "AKIDPYTHONTEST"
AWS_SECRET = "py-aws-secret-value"
UPSTREAM_KEY = f"{AWS_KEY_ID}:{AWS_SECRET}"
PROMPT = "tell me about translated gateways"

CONFIG = """\
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: sqlite://{db}
providers:
  - name: gem
    kind: gemini
    base_url: "http://{mock}/v1beta"
    api_key: ${{PY_GEMINI_KEY}}
    forward_headers: ["x-mock-*"]
  - name: br
    kind: bedrock
    base_url: "http://{mock}"
    forward_headers: ["x-mock-*"]
    aws: {{region: us-west-2, access_key_id: "${{PY_AWS_KEY_ID}}", secret_access_key: "${{PY_AWS_SECRET}}"}}
  - name: br-env
    kind: bedrock
    base_url: "http://{mock}"
models:
  - {{name: gemini, provider: gem, upstream_model: gemini-2.0-flash}}
  - {{name: gemini-embed, provider: gem, upstream_model: text-embedding-004, endpoints: [embeddings]}}
  - {{name: bedrock, provider: br, upstream_model: "anthropic.claude-3-haiku-20240307-v1:0"}}
  - {{name: bedrock-env, provider: br-env, upstream_model: "meta.llama3-8b-instruct-v1:0"}}
keys:
  - id: py
    hash: "sha256:{hash}"
    principal: py-user
    models: ["*"]
"""

MODELS = ["gemini", "bedrock", "bedrock-env"]

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "required": ["city", "unit"], "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    assert Path(BIN).is_file(), f"tollgate binary not found at {BIN} (set TOLLGATE_BIN)"
    tmp = tmp_path_factory.mktemp("tollgate-providers")
    mock = Proc(["mock-upstream", "--listen", "127.0.0.1:0", "--require-key", UPSTREAM_KEY])
    gateway = None
    try:
        mock_addr = field(mock.wait_for("mock upstream listening"), "addr")
        cfg = tmp / "tollgate.yaml"
        cfg.write_text(CONFIG.format(db=tmp / "t.db", mock=mock_addr,
                                     hash=hashlib.sha256(KEY.encode()).hexdigest()))
        env = {
            "PY_GEMINI_KEY": UPSTREAM_KEY,
            "PY_AWS_KEY_ID": AWS_KEY_ID,
            "PY_AWS_SECRET": AWS_SECRET,
            # br-env takes the usual AWS variables.
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "AWS_SESSION_TOKEN": "py-session-token",
            "AWS_REGION": "eu-central-1",
        }
        gateway = Proc(["serve", "--config", str(cfg)], env=env)
        line = gateway.wait_for("tollgate listening")
        yield {"base": f"http://{field(line, 'addr')}/v1", "mock": f"http://{mock_addr}",
               "gateway": gateway}
    finally:
        code = gateway.stop() if gateway else 0
        mock.stop()
        assert code == 0, f"gateway exited {code}; stderr:\n{''.join(gateway.log)}"
        for secret in (AWS_SECRET, "py-session-token"):
            assert not any(secret in l for l in (gateway.log if gateway else [])), secret


@pytest.fixture(scope="module")
def client(gw):
    return openai.OpenAI(base_url=gw["base"], api_key=KEY, max_retries=0, timeout=TIMEOUT)


def received(gw):
    with urllib.request.urlopen(f"{gw['mock']}/_mock/requests", timeout=TIMEOUT) as r:
        return json.load(r)


@pytest.mark.parametrize("model", MODELS)
def test_chat_whole_and_streamed(client, model):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=6)
    text = whole.choices[0].message.content
    assert words(text) == 6
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.prompt_tokens == words("be brief") + words(PROMPT)
    assert whole.usage.completion_tokens == 6

    chunks = list(client.chat.completions.create(
        model=model, messages=messages, max_tokens=6, stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


def test_wire_shapes_and_credentials(client, gw):
    client.chat.completions.create(model="bedrock-env", messages=[{"role": "user", "content": "x"}])
    client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "x"}])
    seen = received(gw)
    br = [r for r in seen if r["path"] == "/model/meta.llama3-8b-instruct-v1:0/converse"][-1]
    auth = br["headers"]["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert "/eu-central-1/bedrock/aws4_request" in auth
    assert br["headers"]["x-amz-security-token"] == "py-session-token"
    gem = [r for r in seen if r["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"][-1]
    assert gem["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert gem["body"]["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]


@pytest.mark.parametrize("model", MODELS)
def test_tool_calls_whole_streamed_and_answered(client, model):
    messages = [{"role": "user", "content": "weather in Oslo?"}]
    forced = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(model=model, messages=messages, tools=TOOLS,
                                       tool_choice=forced)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit")

    calls = {}
    finish = None
    with client.chat.completions.create(model=model, messages=messages, tools=TOOLS,
                                        tool_choice=forced, stream=True) as stream:
        for chunk in stream:
            if not chunk.choices:
                continue
            for tc in chunk.choices[0].delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["args"] += (tc.function.arguments or "") if tc.function else ""
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["args"]) == args

    follow = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 4})},
    ]
    r = client.chat.completions.create(model=model, messages=follow, tools=TOOLS)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content


def test_rate_limit_keeps_429_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429", "x-mock-retry-after": "9"})
    assert e.value.status_code == 429
    assert e.value.response.headers["retry-after"] == "9"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="bedrock", messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429"})


def test_gemini_embeddings_through_the_sdk(client, gw):
    # The SDK asks for base64 by default; the gateway encodes Gemini's floats.
    r = client.embeddings.create(model="gemini-embed", input=["one text", "two"], dimensions=8)
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert len(d.embedding) == 8
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-4)
    floats = client.embeddings.create(model="gemini-embed", input="one text", dimensions=8,
                                      encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(r.data[0].embedding, rel=1e-6)
    sent = [e for e in received(gw) if e["path"].endswith(":batchEmbedContents")][-1]["body"]
    assert sent["requests"][0]["outputDimensionality"] == 8
    assert sent["requests"][0]["content"] == {"parts": [{"text": "one text"}]}


@pytest.mark.parametrize("model,param,kw", [
    ("gemini", "logit_bias", {"logit_bias": {"42": 1}}),
    ("bedrock", "seed", {"seed": 5}),
    ("bedrock", "n", {"n": 2}),
])
def test_fields_that_cannot_be_carried_are_400(client, model, param, kw):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], **kw)
    assert e.value.status_code == 400
    assert e.value.body["param"] == param
    assert param in e.value.body["message"]

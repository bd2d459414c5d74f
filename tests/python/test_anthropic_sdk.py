"""Real clients across API shapes, through a real `tollgate serve` in front of
`tollgate mock-upstream` (which checks the gateway's upstream credentials):

- the official `anthropic` SDK against an OpenAI-shaped upstream (and an
  Anthropic-shaped one), streaming with tool use;
- the official `openai` SDK against an Anthropic-shaped upstream (the mock's
  `/v1/messages`), streaming with tool calls;
- the `openai` SDK's Responses API (`client.responses.create`), whole and streamed.
"""

import hashlib
import json
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest

from harness import BIN, TIMEOUT, Proc, field

KEY = "tg-python-shapes-key"
UPSTREAM_KEY = "upstream-secret-shapes"

CONFIG = """\
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: sqlite://{db}
providers:
  - {{name: up, kind: openai, base_url: "http://{mock}/v1", api_key: {upstream_key}}}
  - {{name: ant, kind: anthropic, base_url: "http://{mock}/v1", api_key: {upstream_key}, forward_headers: ["x-mock-*"]}}
models:
  - {{name: chat-up, provider: up, upstream_model: mock-chat}}
  - {{name: claude-up, provider: ant, upstream_model: mock-claude}}
keys:
  - {{id: py, hash: "sha256:{hash}", principal: py-user, models: ["*"]}}
"""

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    assert Path(BIN).is_file(), f"tollgate binary not found at {BIN} (set TOLLGATE_BIN)"
    tmp = tmp_path_factory.mktemp("shapes")
    mock = Proc(["mock-upstream", "--listen", "127.0.0.1:0", "--require-key", UPSTREAM_KEY])
    gateway = None
    try:
        mock_addr = field(mock.wait_for("mock upstream listening"), "addr")
        cfg = tmp / "tollgate.yaml"
        cfg.write_text(CONFIG.format(db=tmp / "t.db", mock=mock_addr, upstream_key=UPSTREAM_KEY,
                                     hash=hashlib.sha256(KEY.encode()).hexdigest()))
        gateway = Proc(["serve", "--config", str(cfg)])
        line = gateway.wait_for("tollgate listening")
        yield {"base": f"http://{field(line, 'addr')}", "mock": f"http://{mock_addr}"}
    finally:
        code = gateway.stop() if gateway else 0
        mock.stop()
        assert code == 0, f"gateway exited {code}; stderr:\n{''.join(gateway.log)}"


@pytest.fixture(scope="module")
def claude(gw):
    return anthropic.Anthropic(base_url=gw["base"], api_key=KEY, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def oai(gw):
    return openai.OpenAI(base_url=gw["base"] + "/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT)


def last_upstream(gw):
    with urllib.request.urlopen(f"{gw['mock']}/_mock/requests", timeout=TIMEOUT) as r:
        return json.load(r)[-1]


# --- anthropic SDK → gateway ---------------------------------------------------

def test_anthropic_sdk_message_against_openai_upstream(claude, gw):
    msg = claude.messages.create(
        model="chat-up", max_tokens=64, system="be brief",
        messages=[{"role": "user", "content": "hello from the anthropic sdk"}])
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text"
    assert len(msg.content[0].text.split()) == 16 == msg.usage.output_tokens
    assert msg.usage.input_tokens == 2 + 5
    up = last_upstream(gw)
    assert up["path"] == "/v1/chat/completions"
    assert up["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert up["body"]["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("model", ["chat-up", "claude-up"])
def test_anthropic_sdk_streaming_tool_use(claude, model):
    tools = [{"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}]
    with claude.messages.stream(
            model=model, max_tokens=256, tools=tools,
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": "weather in Paris?"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds  # the SDK's event for input_json_delta
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert isinstance(block.input["city"], str)
    assert block.input["unit"] in ("celsius", "fahrenheit")
    assert final.usage.input_tokens == 3 and final.usage.output_tokens > 0

    # Multi-turn: the tool result goes back and a text answer comes out.
    msg = claude.messages.create(
        model=model, max_tokens=32, tools=tools,
        messages=[{"role": "user", "content": "weather in Paris?"},
                  {"role": "assistant", "content": [b.model_dump() for b in final.content]},
                  {"role": "user", "content": [
                      {"type": "tool_result", "tool_use_id": block.id, "content": "18 degrees"}]}])
    assert msg.stop_reason == "end_turn" and msg.content[0].type == "text"


def test_anthropic_sdk_text_stream_and_errors(claude):
    with claude.messages.stream(model="claude-up", max_tokens=6,
                                messages=[{"role": "user", "content": "stream some words"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert len(text.split()) == 6
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 6
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="no-such-model", max_tokens=5,
                               messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(model="chat-up", max_tokens=5, extra_body={"top_k": 3},
                               messages=[{"role": "user", "content": "x"}])
    assert "top_k" in e.value.body["error"]["message"]
    count = claude.messages.count_tokens(model="chat-up",
                                         messages=[{"role": "user", "content": "count these words"}])
    assert count.input_tokens >= 3


# --- openai SDK → gateway → Anthropic-shaped upstream ------------------------

def test_openai_sdk_streaming_tool_calls_against_anthropic_upstream(oai, gw):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    stream = oai.chat.completions.create(
        model="claude-up", stream=True, stream_options={"include_usage": True}, tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "weather in Paris?"}])
    calls, finish, usage = {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                c["id"] = tc.id or c["id"]
                c["name"] = (tc.function.name if tc.function else None) or c["name"]
                c["args"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["name"] == "get_weather"
    args = json.loads(calls[0]["args"])
    assert isinstance(args["city"], str)
    assert usage.prompt_tokens == 3 and usage.completion_tokens > 0
    up = last_upstream(gw)
    assert up["path"] == "/v1/messages"
    assert up["headers"]["x-api-key"] == UPSTREAM_KEY
    assert up["body"]["tool_choice"] == {"type": "tool", "name": "get_weather"}

    # The tool result goes back as an Anthropic tool_result block.
    r = oai.chat.completions.create(
        model="claude-up", tools=tools,
        messages=[{"role": "user", "content": "weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": calls[0]["id"], "type": "function",
                       "function": {"name": "get_weather", "arguments": calls[0]["args"]}}]},
                  {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18 degrees"}])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content
    sent = last_upstream(gw)["body"]["messages"]
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": calls[0]["id"],
                                     "content": "18 degrees"}


def test_openai_sdk_errors_from_anthropic_upstream(oai):
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="claude-up", messages=[{"role": "user", "content": "x"}],
                                    extra_headers={"x-mock-status": "429"})
    assert e.value.status_code == 429
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude-up", n=2, messages=[{"role": "user", "content": "x"}])
    assert "`n`" in e.value.message


# --- Responses API via the openai SDK -----------------------------------------

@pytest.mark.parametrize("model", ["chat-up", "claude-up"])
def test_responses_create_whole_and_streamed(oai, model):
    r = oai.responses.create(model=model, instructions="be brief", input="tell me something")
    assert r.status == "completed"
    assert len(r.output_text.split()) == 16
    assert r.usage.output_tokens == 16

    events = list(oai.responses.create(model=model, input="tell me something", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text == r.output_text


def test_responses_function_call_and_unsupported(oai):
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]
    r = oai.responses.create(model="chat-up", input="weather?", tools=tools,
                             tool_choice={"type": "function", "name": "get_weather"})
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert isinstance(json.loads(call.arguments)["city"], str)
    r2 = oai.responses.create(model="chat-up", tools=tools, input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}])
    assert r2.output_text

    events = list(oai.responses.create(model="chat-up", input="weather?", tools=tools, stream=True,
                                       tool_choice="required"))
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == json.loads(events[-1].response.output[0].arguments)

    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model="chat-up", input="x", previous_response_id="resp_123")
    assert "previous_response_id" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model="chat-up", input="x", tools=[{"type": "web_search"}])
    assert "tools[0].type" in e.value.message

#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the repository's
own fixtures: the translate golden files (request and response bodies of
every shape, streams as SSE), guardrail corpus lines, and hand-built Bedrock
event-stream frames. Run from anywhere; idempotent (file names are content
hashes). libFuzzer adds what it finds to the same folders when run locally;
CI runs read them and keep new finds out of the repository."""
import hashlib, json, pathlib, struct, zlib

ROOT = pathlib.Path(__file__).resolve().parent
DATA = ROOT.parent / "crates/tollgate/tests/data"
OUT = ROOT / "corpus"


def put(target, blob):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(blob).hexdigest()[:16]).write_bytes(blob)


def objects(v, out):
    if isinstance(v, dict):
        out.append(v)
        for x in v.values():
            objects(x, out)
    elif isinstance(v, list):
        for x in v:
            objects(x, out)


def frame(event, payload):
    headers = b""
    for name, value in [(":event-type", event), (":message-type", "event"), (":content-type", "application/json")]:
        n, v = name.encode(), value.encode()
        headers += bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return msg + struct.pack(">I", zlib.crc32(msg))


bodies, streams = [], []
for f in sorted((DATA / "translate").rglob("*.json")):
    v = json.loads(f.read_text())
    found = []
    objects(v, found)
    bodies += [o for o in found if len(json.dumps(o)) < 4000]
    if "stream" in f.parts:
        for shape, events in v.items():
            if isinstance(events, list):
                sse = "".join(
                    (f"event: {e['event']}\n" if isinstance(e, dict) and "event" in e else "")
                    + f"data: {json.dumps(e.get('data', e) if isinstance(e, dict) else e)}\n\n"
                    for e in events
                )
                streams.append(sse.encode())
for b in bodies[:200]:
    put("request_shapes", json.dumps(b).encode())
for s in streams:
    put("upstream_streams", b"\x07" + s)
    put("sse", b"\x03" + s)
put("sse", b"\x01data: {\"a\":1}\r\n\r\n: comment\n\nevent: x\ndata: [DONE]\n\n")
for line in (DATA / "guardrails/corpus_extra.jsonl").read_text().splitlines()[-40:]:
    if line.strip():
        put("guardrails", b"\x05" + json.loads(line)["text"].encode())
for line in (DATA / "guardrails/corpus.jsonl").read_text().splitlines()[::8]:
    put("guardrails", b"\x03" + json.loads(line)["text"].encode())
events = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}}),
    ("messageStop", {"stopReason": "end_turn"}),
    ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}}),
]
put("bedrock_eventstream", b"\x10" + b"".join(frame(e, p) for e, p in events))
put("bedrock_eventstream", b"\x40" + frame("messageStop", {"stopReason": "max_tokens"}))

# bearer: the first byte's bit 0 picks Authorization / x-api-key, bit 1 the
# JSON parts (`header \0 claims \0 signature`) encoded into a token.
def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=")


jwt_parts = [
    ({"alg": "RS256", "kid": "k1", "typ": "JWT"},
     {"iss": "https://idp.example.com", "sub": "alice", "aud": "tollgate", "exp": 4102444800,
      "nbf": 0, "groups": ["eng", "ml"], "tenant": "acme", "email": "a@example.com"}),
    ({"alg": "none"}, {"iss": "https://idp.example.com", "sub": "x"}),
    ({"alg": "ES256", "crit": ["b64"], "b64": False}, {"iss": "i", "exp": 1.5e9, "aud": ["a", "b"]}),
    ({"alg": "HS256"}, {"sub": 7, "groups": "not-a-list"}),
]
for h, c in jwt_parts:
    hj, cj = json.dumps(h).encode(), json.dumps(c).encode()
    token = b64url(hj) + b"." + b64url(cj) + b"." + b64url(b"sig")
    put("bearer", b"\x00Bearer " + token)
    put("bearer", b"\x01" + token)
    put("bearer", b"\x02" + hj + b"\x00" + cj + b"\x00sig")
put("bearer", b"\x00bearer   tg-Ck4Bn7Vm1Xz3Qw5Er8Ty  ")
put("bearer", b"\x00Basic dXNlcjpwYXNz")
put("bearer", b"\x01tg-key-123")
put("bearer", b"\x00Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJpIn0.")

# config: every example, its `${NAME}`s pointed at variables the target sets.
import re
for f in sorted((ROOT.parent / "examples").glob("*.yaml")):
    text = re.sub(r"\$\{[A-Za-z0-9_]+\}", "${TG_FUZZ_KEY}", f.read_text())
    put("config", text.encode())
put("config", b"storage: { url: \"${TG_FUZZ_URL}\" }\nproviders: [{ name: p, kind: openai, "
    b"base_url: \"http://u:p@h/v1?k=$${x}\", api_key: \"${TG_FUZZ_EMPTY}\" }]\n")

# mcp_messages: even first byte, a client's POST body; odd, an upstream's
# answer (SSE in chunks of byte / 2 bytes, or one JSON body).
client = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": {"cursor": "c2"}},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
     "params": {"name": "db__query", "arguments": {"sql": "select 1"}, "_meta": {"progressToken": 1}}},
    {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "p", "arguments": {}}},
    {"jsonrpc": "2.0", "id": 5, "result": {}},
    {"jsonrpc": "2.0", "id": None, "method": "ping"},
    {"jsonrpc": "1.0", "id": 1.5, "method": "ping"},
]
for m in client:
    put("mcp_messages", b"\x00" + json.dumps(m).encode())
tools = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [
    {"name": "query", "description": "Run SQL", "inputSchema": {"type": "object", "properties": {"sql": {"type": "string"}}},
     "annotations": {"readOnlyHint": True}},
    {"name": "bare", "inputSchema": {"type": "object"}, "description": None},
], "nextCursor": "page-2"}}
call = {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "1"}],
        "structuredContent": {"rows": [[1]]}, "isError": False}}
err = {"jsonrpc": "2.0", "id": 4, "error": {"code": -32602, "message": "bad", "data": {"x": 1}}}
note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
for m in (tools, call, err):
    put("mcp_messages", b"\x01" + json.dumps(m).encode())
    put("mcp_messages", b"\x0f" + ("event: message\ndata: %s\n\ndata: %s\n\n" % (json.dumps(note), json.dumps(m))).encode())

# ingress: bits 0-1 of the first byte the endpoint (chat, completions,
# embeddings, invocations), bits 2-3 the caller's shape (OpenAI, Anthropic
# Messages, Responses), bit 4 a tag header value before the first newline,
# bit 5 tags from `metadata`.
for f in sorted((DATA / "translate/request").glob("*.json")):
    v = json.loads(f.read_text())
    put("ingress", b"\x00" + json.dumps(v["openai"]).encode())
    put("ingress", b"\x24" + json.dumps(v["anthropic"]).encode())
for f in sorted((DATA / "translate/responses").glob("*.json")):
    v = json.loads(f.read_text())
    put("ingress", b"\x08" + json.dumps(v["responses_request"]).encode())
    put("ingress", b"\x00" + json.dumps(v["chat_request"]).encode())
chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}, "max_tokens": 16, "n": 1, "temperature": 0.5,
        "metadata": {"team": "ml", "env": "prod", "n": 3}}
put("ingress", b"\x30team=ml, env=prod,cost-centre=42\n" + json.dumps(chat).encode())
put("ingress", b"\x10a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9\n" + json.dumps(chat).encode())
put("ingress", b"\x01" + json.dumps({"model": "m", "prompt": ["a", "b"], "max_tokens": 1099511627776}).encode())
put("ingress", b"\x02" + json.dumps({"model": "m", "input": ["a"], "encoding_format": "float"}).encode())
put("ingress", b"\x03" + json.dumps({"model": "m", "dataframe_split": {"columns": ["x"], "data": [[1]]}}).encode())
put("ingress", b"\x00{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}],\"max_tokens\":-1,\"temperature\":2.5}")
put("ingress", b"\x00 \n\t")

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

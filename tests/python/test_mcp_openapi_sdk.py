"""A REST API published as MCP tools (transport: openapi, issue 27),
listed and called with the official MCP Python SDK through `tollgate
serve`: the tools come from the OpenAPI document
(crates/tollgate/tests/data/openapi/pets.yaml, a curated subset), each call
reaches the local REST API (tests/python/mcp_servers/rest_api.py) with the
gateway's credential, JSON answers come back as structured content, an
error status as isError, and the caller never sees the credential."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from harness import REPO
from test_mcp_sdk import entries, gateway_plain, run, session, sha

API = Path(__file__).parent / "mcp_servers" / "rest_api.py"
DOC = REPO / "crates/tollgate/tests/data/openapi/pets.yaml"
API_TOKEN = "rest-api-token-9Xq4Lm7Tz2"
KEY = "tg-openapi-key"


@pytest.fixture
def api(tmp_path):
    portfile, log = tmp_path / "api.port", tmp_path / "api.log"
    p = subprocess.Popen([sys.executable, str(API), str(portfile), str(log)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not portfile.exists():
            assert p.poll() is None and time.monotonic() < deadline, "the REST API did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{portfile.read_text()}", log
    finally:
        p.terminate()
        p.wait(timeout=10)


def config(tmp, base):
    return f"""
server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}
storage: {{url: "sqlite://{tmp / "t.db"}"}}
keys:
  - {{id: k, hash: "{sha(KEY)}", principal: alice}}
policy:
  rules:
    - {{name: pets, principals: [alice], tools: ["pets/*", "pets-url/*"]}}
mcp:
  servers:
    - name: pets
      transport: openapi
      openapi: {{spec: "{DOC}", base_url: "{base}/v1", operations: [listPets, getPet, createPet]}}
      auth: {{type: bearer, token: {API_TOKEN}}}
    - name: pets-url
      transport: openapi
      openapi: {{spec: "{base}/openapi.yaml"}}
      auth: {{type: bearer, token: {API_TOKEN}}}
"""


def test_an_openapi_document_is_served_as_mcp_tools(tmp_path, api):
    base, log = api
    with gateway_plain(tmp_path, config(tmp_path, base)) as (host, g):
        async def go():
            async with session(host, "pets", KEY) as s:
                tools = {t.name: t for t in (await s.list_tools()).tools}
                assert sorted(tools) == ["createPet", "getPet", "listPets"], "deletePet is not in the subset"
                assert tools["getPet"].description == "Fetch one pet"
                assert tools["getPet"].input_schema["required"] == ["petId"]
                assert tools["createPet"].input_schema["properties"]["body"]["required"] == ["name"]
                r = await s.call_tool("getPet", {"petId": "7"})
                assert not r.is_error
                assert r.structured_content["id"] == "7"
                assert r.structured_content["auth"] == "[redacted]", "the echoed credential is scrubbed"
                r = await s.call_tool("listPets", {"limit": 2})
                assert r.structured_content == {"result": [{"name": "rex"}, {"name": "tom"}]}
                r = await s.call_tool("createPet", {"body": {"name": "tom", "age": 3}})
                assert r.structured_content == {"name": "tom", "age": 3}
                r = await s.call_tool("getPet", {"petId": "0"})
                assert r.is_error and r.content[0].text.startswith("HTTP 404:")
                with pytest.raises(MCPError):
                    await s.call_tool("deletePet", {"petId": "1"})
            async with session(host, "pets-url", KEY) as s:
                tools = sorted(t.name for t in (await s.list_tools()).tools)
                assert tools == ["createPet", "deletePet", "getPet", "listPets"]
                r = await s.call_tool("deletePet", {"petId": "3"})
                assert not r.is_error

        run(go())
        assert API_TOKEN not in "".join(g.log)
    seen = entries(log)
    assert [(e["method"], e["path"]) for e in seen] == [
        ("GET", "/v1/pets/7"), ("GET", "/v1/pets?limit=2"), ("POST", "/v1/pets"),
        ("GET", "/v1/pets/0"), ("DELETE", "/v1/pets/3")]
    assert all(e["authorization"] == f"Bearer {API_TOKEN}" for e in seen)
    assert not any(KEY in json.dumps(e) for e in seen), "the caller's key reached the API"
    assert json.loads(seen[2]["body"]) == {"name": "tom", "age": 3}

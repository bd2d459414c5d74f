"""The official `databricks-sdk` against a real `tollgate serve`:
`WorkspaceClient(host=gateway, token=key).serving_endpoints.query(...)` for
chat and MLflow payloads, errors mapped to the SDK's exceptions; and the
upstream-credential secrets (static bearer, api-key, OAuth client secret,
issued access tokens) never appear in the gateway's output, its responses or
its metrics, on success and failure paths alike."""

import hashlib
import json
import urllib.error
import urllib.request

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, Unauthenticated
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

from harness import TIMEOUT, stack

KEY = "tg-databricks-sdk-key"
# Distinctive values: any of them in the gateway's output is a leak.
SECRETS = {
    "DBX_PAT": "dapi-LEAKCHECK-pat-5f1d",
    "SP_SECRET": "LEAKCHECK-sp-secret-93ab",
    "BAD_SECRET": "LEAKCHECK-wrong-secret-77c2",
    "AZ_KEY": "LEAKCHECK-azure-key-0e4b",
}
CLIENT_ID = "sp-leakcheck"

CONFIG = """\
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: sqlite://{db}
providers:
  - {{name: dbx, kind: databricks, base_url: "http://{mock}", auth: {{type: bearer, token: "${{DBX_PAT}}"}}}}
  - {{name: dbx-sp, kind: databricks, base_url: "http://{mock}",
      auth: {{type: client_credentials, client_id: {client_id}, client_secret: "${{SP_SECRET}}"}}}}
  - {{name: dbx-bad, kind: databricks, base_url: "http://{mock}",
      auth: {{type: client_credentials, client_id: {client_id}, client_secret: "${{BAD_SECRET}}"}}}}
  - {{name: az, kind: azure_openai, base_url: "http://{mock}", api_version: "2024-10-21",
      auth: {{type: api_key, key: "${{AZ_KEY}}"}}}}
models:
  - {{name: llama, provider: dbx, upstream_model: databricks-llama}}
  - {{name: churn, provider: dbx}}
  - {{name: llama-sp, provider: dbx-sp, upstream_model: databricks-llama}}
  - {{name: llama-bad, provider: dbx-bad, upstream_model: databricks-llama}}
  - {{name: gpt, provider: az, upstream_model: gpt-deploy}}
keys:
  - id: dbx-sdk
    hash: "sha256:{hash}"
    principal: sdk-user
    models: ["*"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    def config(mock_addr, db):
        return CONFIG.format(db=db, mock=mock_addr, client_id=CLIENT_ID,
                             hash=hashlib.sha256(KEY.encode()).hexdigest())

    # The mock accepts the static PAT (not the Azure key: that path fails on
    # purpose) and the service principal's real secret. The gateway logs at
    # debug everywhere: the most output a secret could slip into.
    with stack(tmp_path_factory.mktemp("tollgate-dbx"),
               ["--client-id", CLIENT_ID, "--client-secret", SECRETS["SP_SECRET"]],
               config,
               gateway_env={**SECRETS, "RUST_LOG": "debug"},
               mock_env={"MOCK_REQUIRE_KEY": SECRETS["DBX_PAT"]}) as s:
        yield {**s, "bodies": []}


@pytest.fixture(scope="module")
def w(gw):
    return WorkspaceClient(host=gw["host"], token=KEY)


def user(text):
    return [ChatMessage(role=ChatMessageRole.USER, content=text)]


def test_sdk_query_chat(w):
    r = w.serving_endpoints.query(name="llama", messages=user("hello databricks"), max_tokens=8)
    assert r.choices[0].message.content.strip()
    assert r.usage.prompt_tokens == 2
    assert r.usage.completion_tokens == 8  # max_tokens honoured upstream


def test_sdk_query_ml_payloads(w):
    r = w.serving_endpoints.query(name="churn", dataframe_records=[{"a": 1, "b": 2}, {"a": 5}])
    assert r.predictions == [3.0, 5.0]
    r = w.serving_endpoints.query(name="churn", instances=[[1, 2, 3]])
    assert r.predictions == [6.0]


def test_sdk_errors_map_to_sdk_exceptions(gw, w):
    with pytest.raises(NotFound):
        w.serving_endpoints.query(name="no-such-endpoint", messages=user("x"))
    bad = WorkspaceClient(host=gw["host"], token="not-a-gateway-key")
    with pytest.raises(Unauthenticated):
        bad.serving_endpoints.query(name="llama", messages=user("x"))


def call(gw, model, path="/v1/chat/completions"):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    req = urllib.request.Request(gw["host"] + path, data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {KEY}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    gw["bodies"].append(text)
    return status, text


def test_no_secret_in_output_responses_or_metrics(gw):
    assert call(gw, "llama")[0] == 200                      # static bearer
    assert call(gw, "llama-sp")[0] == 200                   # client credentials
    status, text = call(gw, "llama-bad")                    # rejected client secret
    assert status == 502 and "invalid_client" in text, text
    # The Azure key is not the mock's key: the upstream's 401 becomes a 502.
    assert call(gw, "gpt")[0] == 502
    status, text = call(gw, "llama-bad", "/serving-endpoints/llama-bad/invocations")
    assert status == 502 and "TEMPORARILY_UNAVAILABLE" in text, text
    with urllib.request.urlopen(gw["admin"] + "/metrics", timeout=TIMEOUT) as r:
        gw["bodies"].append(r.read().decode())
    with urllib.request.urlopen(gw["mock"] + "/_mock/requests", timeout=TIMEOUT) as r:
        seen = json.load(r)
    # The upstream did receive the credentials (so the paths were exercised)…
    auths = {e["headers"].get("authorization", "") for e in seen}
    assert f"Bearer {SECRETS['DBX_PAT']}" in auths
    assert any(e["headers"].get("api-key") == SECRETS["AZ_KEY"] for e in seen)
    issued = [a.removeprefix("Bearer ") for a in auths if a.startswith("Bearer mock-at-")]
    assert issued, auths
    # …and none of them, nor the issued access tokens, left the gateway.
    gw["gateway"].stop()
    output = "".join(gw["gateway"].log)
    assert "tollgate listening" in output
    assert "upstream token refresh failed" in output  # the failure path was logged
    everything = output + "\n".join(gw["bodies"])
    for secret in [*SECRETS.values(), *issued]:
        assert secret not in everything, f"secret {secret[:12]}… leaked"

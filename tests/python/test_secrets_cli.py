"""`tollgate connections` (issue 27): a secret set through the CLI from
stdin is stored encrypted (the raw SQLite file holds no plaintext), listed
by name only, re-encrypted by rotate-secrets after a key rotation, and a
gateway started with a wrong key refuses to start, naming the secret."""

import base64
import json
import subprocess

from harness import BIN

PLAIN = "crm-token-value-7Hq2Xv9Lp3"


def tg(*args, stdin=None):
    return subprocess.run([BIN, *args], input=stdin, capture_output=True, text=True, timeout=60)


def config(tmp, primary, previous=None):
    prev = f"\n  previous: [{{id: {previous[0]}, file: {previous[1]}}}]" if previous else ""
    cfg = tmp / "tollgate.yaml"
    cfg.write_text(f"""
server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}
storage: {{url: "sqlite://{tmp / "t.db"}"}}
secrets:
  primary: {{id: {primary[0]}, file: {primary[1]}}}{prev}
""")
    return str(cfg)


def raw(tmp):
    return b"".join(p.read_bytes() for p in tmp.glob("t.db*"))


def test_set_list_rotate_from_the_cli(tmp_path):
    k1, k2 = tmp_path / "k1.key", tmp_path / "k2.key"
    k1.write_text(tg("connections", "generate-key").stdout)
    assert len(base64.b64decode(k1.read_text())) == 32
    k2.write_bytes(b"\x02" * 32)
    cfg = config(tmp_path, ("k1", k1))
    r = tg("connections", "set-secret", "crm-token", "--config", cfg, stdin=PLAIN + "\n")
    assert r.returncode == 0, r.stderr
    assert PLAIN not in r.stdout + r.stderr
    listed = json.loads(tg("connections", "list-secrets", "--config", cfg, "--json").stdout)
    assert [(s["name"], s["key_id"]) for s in listed] == [("crm-token", "k1")]
    assert PLAIN.encode() not in raw(tmp_path)

    cfg = config(tmp_path, ("k2", k2), ("k1", k1))
    r = tg("connections", "rotate-secrets", "--config", cfg)
    assert r.returncode == 0 and "re-encrypted 1 secret(s)" in r.stdout, r.stderr
    listed = json.loads(tg("connections", "list-secrets", "--config", cfg, "--json").stdout)
    assert [s["key_id"] for s in listed] == ["k2"]
    assert PLAIN.encode() not in raw(tmp_path)

    # Another key under id k2: the gateway does not start, and says why.
    k2.write_bytes(b"\x03" * 32)
    r = subprocess.run([BIN, "serve", "--config", cfg], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert 'secret "crm-token": the configured key "k2" is not the key it was encrypted with' in r.stderr
    assert PLAIN not in r.stderr + r.stdout

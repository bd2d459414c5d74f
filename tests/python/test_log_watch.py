"""The config watcher does not feed on its own log: with TOLLGATE_LOG=trace
and the log written to a file in the config's folder, an idle gateway writes
a bounded number of lines (it wrote 282,000 in 3 s when the watcher's own
trace lines were events in the watched folder)."""

import os
import subprocess
import time

from harness import BIN


def test_trace_log_next_to_the_config_does_not_feed_the_watcher(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text(
        f"""
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
  watch_config: true
storage:
  url: sqlite://{tmp_path / "t.db"}
providers:
  - name: local
    kind: mock
models:
  - name: m
    provider: local
"""
    )
    log = tmp_path / "gateway.log"
    with open(log, "w") as out:
        p = subprocess.Popen(
            [BIN, "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TOLLGATE_LOG": "trace"},
        )
        try:
            time.sleep(3)
        finally:
            p.terminate()
            p.wait(timeout=15)
    lines = log.read_text(errors="replace").splitlines()
    assert any("listening" in l or "addr=" in l for l in lines), "\n".join(lines[:50])
    assert len(lines) < 5000, f"{len(lines)} lines in 3 s; the first: " + "\n".join(lines[:20])

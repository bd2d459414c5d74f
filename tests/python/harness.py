"""Shared by the SDK tests: the binary under test and a subprocess wrapper
that drains its output (stdout and stderr, merged) in a thread."""

import os
import queue
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TOLLGATE_BIN", str(REPO / "target" / "debug" / "tollgate"))
TIMEOUT = 10.0


class Proc:
    """A subprocess whose output (stdout and stderr) is drained by a thread
    (the pipe never fills) and kept in `log`."""

    def __init__(self, args, env=None):
        self.lines = queue.Queue()
        self.log = []
        self.p = subprocess.Popen(
            [BIN, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RUST_LOG": "info", **(env or {})},
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stdout:
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, marker, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if marker in line:
                return line
        raise AssertionError(f"no {marker!r} within {timeout}s; stderr:\n{''.join(self.log)}")

    def stop(self, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=5)
            raise AssertionError(f"{self.p.args} did not exit within {timeout}s after SIGTERM")


def field(line, name):
    m = re.search(rf"(?<!\w){name}=(\S+)", line)
    assert m, f"no {name}= in {line!r}"
    return m.group(1)


@contextmanager
def stack(tmp, mock_args, make_config, gateway_env=None, mock_env=None):
    """A `tollgate mock-upstream` and a `tollgate serve` in front of it.
    `make_config(mock_addr, db)` gives the gateway's YAML. Yields the
    addresses and the gateway `Proc`; on exit the gateway must stop with 0."""
    assert Path(BIN).is_file(), f"tollgate binary not found at {BIN} (set TOLLGATE_BIN)"
    mock = Proc(["mock-upstream", "--listen", "127.0.0.1:0", *mock_args], env=mock_env)
    gateway = None
    try:
        mock_addr = field(mock.wait_for("mock upstream listening"), "addr")
        db = tmp / "t.db"
        cfg = tmp / "tollgate.yaml"
        cfg.write_text(make_config(mock_addr, db))
        gateway = Proc(["serve", "--config", str(cfg)], env=gateway_env)
        line = gateway.wait_for("tollgate listening")
        yield {
            "host": f"http://{field(line, 'addr')}",
            "admin": f"http://{field(line, 'admin_addr')}",
            "mock": f"http://{mock_addr}",
            "db": f"sqlite://{db}",
            "gateway": gateway,
        }
    finally:
        code = gateway.stop() if gateway else 0
        mock.stop()
        assert code == 0, f"gateway exited {code}; output:\n{''.join(gateway.log)}"

"""Shared by the SDK tests: the `tollgate` binary and a subprocess wrapper."""

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TOLLGATE_BIN", str(REPO / "target" / "debug" / "tollgate"))
TIMEOUT = 10.0


class Proc:
    """A subprocess whose stderr is drained by a thread (the pipe never fills)."""

    def __init__(self, args, env=None):
        self.lines = queue.Queue()
        self.log = []
        self.p = subprocess.Popen(
            [BIN, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "info", **(env or {})},
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
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

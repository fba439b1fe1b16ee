"""A `dlpipe serve` process on 127.0.0.1 for tests and the load benchmark. Not a test module."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`dlpipe serve MODEL` in a child process; `with Server(...) as server:` waits until it
    answers /healthz (at most `start_timeout` s) and stops it with SIGTERM at the end."""

    def __init__(self, model: Path, *options: str, start_timeout: float = 180):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "dlpipe", "serve", str(model), "--host", "127.0.0.1",
                        "--port", str(self.port), *options]
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.stderr = ""

    def __enter__(self) -> "Server":
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        text=True, env=env)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dlpipe serve exited {self.process.returncode}: {self.process.stderr.read()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"dlpipe serve did not answer within {self.start_timeout} s: {self.stderr}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; returns the exit code (stderr kept in `self.stderr`)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        return self.process.returncode

    def __exit__(self, *exc) -> None:
        self.stop()

    def request(self, path: str, body: bytes | dict | None = None, timeout: float = 60) -> tuple[int, dict]:
        """(status, JSON answer) of a GET (no body) or POST."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="GET" if data is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

"""A real `agentgym serve-env` process for tests (started on a free loopback port)."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass

TOKEN = "test-token-5f1c"


@dataclass
class Server:
    """A running `agentgym serve-env` process."""

    process: subprocess.Popen[str]
    url: str
    token: str | None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def active_sessions(self) -> int:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.get(f"{self.url}/metadata", headers=headers).json()["active_sessions"]

    def wait_for_sessions(self, count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.active_sessions() != count:
            assert time.monotonic() < deadline, (
                f"the server still has {self.active_sessions()} sessions, expected {count}"
            )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start_server(*arguments: str, token: str | None = TOKEN, port: int = 0) -> Server:
    """Start `agentgym serve-env` and wait for its ready line (it names the port)."""
    command = [sys.executable, "-m", "agentgym.cli", "serve-env", *arguments, "--port", str(port)]
    command += ["--token", token] if token else ["--no-token"]
    environment = {key: value for key, value in os.environ.items() if key != "AGENTGYM_ENV_TOKEN"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    line = process.stdout.readline() if selector.select(timeout=90) else ""
    selector.close()
    match = re.search(r" on (http://\S+) token=", line)
    if match is None:
        process.kill()
        raise AssertionError(f"serve-env did not start: {line!r} {process.stderr.read()}")
    return Server(process, match.group(1), token)

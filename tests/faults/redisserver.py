"""A throwaway ``redis-server`` of the test's own, on one free port for its whole life so that
it can be killed and come back, without touching the shared one. Nothing is saved: a restarted
server is empty, as a Redis without persistence is after a crash."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from fakes.ports import free_port


def available() -> str | None:
    """Why a throwaway server cannot run here, or None."""
    return None if shutil.which("redis-server") else "redis-server is not installed"


class RedisServer:
    def __init__(self, directory: Path, *, password: str | None = None):
        self.port = free_port()
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self._password = password
        self._dir = directory
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self._dir)]
        if self._password:
            cmd += ["--requirepass", self._password]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    return
                except (redis.ConnectionError, OSError):
                    if time.monotonic() > deadline or self._proc.poll() is not None:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: connections drop at once, nothing is flushed."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

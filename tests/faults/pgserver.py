"""A throwaway PostgreSQL server of the test's own (initdb + pg_ctl on a free port), so that
fault tests can stop and start a database without touching the shared one."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from fakes.ports import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    return found


def available() -> str | None:
    """Why a throwaway server cannot run here, or None."""
    if not (_bin("initdb") and _bin("pg_ctl")):
        return "initdb/pg_ctl are not installed"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser (initdb refuses root)"
    return None


class PgServer:
    def __init__(self) -> None:
        # Not under pytest's tmp_path: that is private to root, and initdb runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="quotabot-pg-"))
        self.base.chmod(0o755)
        self.dir = self.base / "pgdata"
        self.sock = self.base / "sock"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(cmd), check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.sock.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.sock, "postgres")
        initdb = _bin("initdb")
        assert initdb
        self._run(initdb, "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        pg_ctl = _bin("pg_ctl")
        assert pg_ctl
        options = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            pg_ctl, "-D", str(self.dir), "-o", options, "-w", "-l", str(self.dir / "log"), "start"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("the throwaway PostgreSQL did not start")

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = _bin("pg_ctl")
        assert pg_ctl
        self._run(pg_ctl, "-D", str(self.dir), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

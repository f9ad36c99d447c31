#!/usr/bin/env python3
"""Set up a virtual environment in .venv, then run quotabot or its checks in it.

    python3 dev.py chat [ARGS]    set up, then `quotabot chat` (any quotabot command works)
    python3 dev.py test [ARGS]    set up, then ruff, mypy and the whole pytest suite

Needs only Python 3.11+. Re-installs when pyproject.toml changes; otherwise starts at once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".quotabot-installed"


def run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        sys.exit(result.returncode)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs under whatever python3 is)
        sys.exit(f"quotabot needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want and (BIN / "quotabot").exists():
        return
    if not (BIN / "python").exists():
        print("Creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("Installing quotabot and its test tools into .venv ...", file=sys.stderr)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[test]")
    STAMP.write_text(want)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    setup()
    command, args = sys.argv[1], sys.argv[2:]
    if command == "test":
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy")
        run(BIN / "pytest", *args)
        return
    os.execv(BIN / "quotabot", [str(BIN / "quotabot"), command, *args])


if __name__ == "__main__":
    main()

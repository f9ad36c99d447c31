#!/usr/bin/env python3
"""Set up a virtual environment in .venv, then run quotabot or its checks in it.

    python3 dev.py chat [ARGS]    set up, then `quotabot chat` (any quotabot command works)
    python3 dev.py test [ARGS]    set up, then ruff, mypy and the whole pytest suite

Needs only Python 3.11+. ``chat`` and the other commands install quotabot alone; ``test`` adds
the test tools. Re-installs when pyproject.toml changes; otherwise starts at once.
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


def say(text: str) -> None:
    print(f"dev.py: {text}", file=sys.stderr, flush=True)


def setup(*, tests: bool) -> None:
    """quotabot alone for running it; its test tools too for ``test`` (installed once)."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs under whatever python3 is)
        sys.exit(f"quotabot needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    have = STAMP.read_text().split() if STAMP.exists() else []
    wanted = "test" if tests else "run"
    installed = have[:1] == [digest] and (wanted in have[1:] or "test" in have[1:])
    if installed and (BIN / "quotabot").exists():
        return
    if not (BIN / "python").exists():
        say("creating a virtual environment in .venv ...")
        venv.create(VENV, with_pip=True)
        have = []
    say("upgrading pip in .venv ...")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = ".[test]" if tests else "."
    what = "quotabot and its test tools" if tests else "quotabot"
    say(f"installing {what} into .venv (the first time takes a minute or two) ...")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", target)
    kinds = {wanted, *(have[1:] if have[:1] == [digest] else [])}
    STAMP.write_text(" ".join([digest, *sorted(kinds)]))
    say("ready.")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    setup(tests=command == "test")
    if command == "test":
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy")
        run(BIN / "pytest", *args)
        return
    os.execv(BIN / "quotabot", [str(BIN / "quotabot"), command, *args])


if __name__ == "__main__":
    main()

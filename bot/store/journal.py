"""Events acknowledged a moment before their claim reached the database, kept on local disk.

By default an acknowledgement does not wait for its event's claim to be written (a group
commit: a millisecond at rest, tens at 300 events a second), so a process killed in that
moment would take those events with it. Each is first appended here with one ``write`` (no
fsync: a killed process's writes are in the page cache, and the file outlives it); a process
starting on the same data directory claims what a dead one left (``EventLog.recover``).

Files rotate every ``ROTATE`` seconds and are deleted once every event in them is claimed, so
message text stays on disk for seconds. A file is locked (``flock``) while its process lives:
only a dead process's files are read back.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PATTERN = "inbox-*.jsonl"


@dataclass
class _File:
    path: Path
    fd: int
    opened: float
    keys: set[str] = field(default_factory=set)
    """Events written here and not claimed yet."""


class Journal:
    ROTATE = 10.0

    def __init__(self, directory: Path):
        self.directory = directory
        self._active: _File | None = None
        self._old: list[_File] = []
        self._where: dict[str, _File] = {}

    def hold(self, key: str, payload: dict[str, Any]) -> None:
        """Before the acknowledgement: ``key`` and its event, until ``release(key)``."""
        file = self._file()
        line = json.dumps({"key": key, "payload": payload}, separators=(",", ":")) + "\n"
        try:
            os.write(file.fd, line.encode())
        except OSError as exc:  # a full disk must not cost the event: the claim still comes
            log.warning("could not journal event %s: %s", key, exc)
            return
        file.keys.add(key)
        self._where[key] = file

    def release(self, key: str) -> None:
        """The event's claim is written (or cannot be): the journal need not keep it."""
        file = self._where.pop(key, None)
        if file is None:
            return
        file.keys.discard(key)
        if file.keys:
            return
        if file is self._active:
            os.ftruncate(file.fd, 0)  # nothing left to keep: no message text either
        else:
            self._close(file)

    def close(self) -> None:
        """Delete the files with nothing left to claim; leave the others for the next start."""
        files = [*self._old, *([self._active] if self._active else [])]
        self._old, self._active = [], None
        for file in files:
            if file.keys:
                os.close(file.fd)
            else:
                self._close(file)

    def left(self) -> list[tuple[Path, list[tuple[str, dict[str, Any]]]]]:
        """What dead processes left here: each file (locked now by this process; ``drop``
        it once its events are claimed) with its events."""
        found = []
        for path in sorted(self.directory.glob(PATTERN)):
            if self._active is not None and path == self._active.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # its process is alive
                continue
            events = []
            with os.fdopen(os.dup(fd), "rb") as f:
                for raw in f:
                    try:
                        entry = json.loads(raw)
                        events.append((str(entry["key"]), dict(entry["payload"])))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a full disk
            self._old.append(_File(path, fd, time.monotonic()))
            found.append((path, events))
        return found

    def drop(self, path: Path, *, done: bool = True) -> None:
        """A file from ``left``: deleted when ``done``; else kept (and unlocked) for later."""
        for file in self._old:
            if file.path == path:
                if done:
                    self._close(file)
                else:
                    self._old.remove(file)
                    os.close(file.fd)
                return

    def _file(self) -> _File:
        now = time.monotonic()
        active = self._active
        if active is not None and now - active.opened < self.ROTATE:
            return active
        if active is not None:
            if active.keys:
                self._old.append(active)
            else:
                self._close(active)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"inbox-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._active = _File(path, fd, now)
        return self._active

    def _close(self, file: _File) -> None:
        if file in self._old:
            self._old.remove(file)
        try:
            file.path.unlink(missing_ok=True)  # first: no other process may take it meanwhile
        finally:
            os.close(file.fd)

"""The local journal of acknowledged, not yet claimed events, and its recovery after a crash."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import Database
from bot.store.events import EventLog
from bot.store.journal import PATTERN, Journal

EVENT = {"event": {"text": "kept?"}, "team": "T1"}


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """The journal's directory (the test database may be in ``tmp_path``)."""
    return tmp_path / "inbox"


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob(PATTERN))


async def test_an_event_acknowledged_before_a_kill_is_claimed_after_the_restart(
    db: Database, tmp: Path
) -> None:
    """A process journals two events, acknowledges them and is killed (SIGKILL) before either
    claim is written. The next process on the same data directory claims both and answers
    them; an event another process had claimed meanwhile stays theirs."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from bot.store.journal import Journal\n"
        "j = Journal(Path(sys.argv[1]))\n"
        "for i in range(3):\n"
        "    j.hold(f'slack:T1:C1:{i}', {'event': {'text': f'question {i}'}, 'team': 'T1'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, str(tmp)], check=False
    )
    assert done.returncode == -9
    assert len(files(tmp)) == 1
    assert await EventLog(db).first("slack:T1:C1:2", EVENT)  # a retry reached a replica

    events = EventLog(db, journal=Journal(tmp))
    taken = await events.recover(["slack:"])
    assert [(o.key, o.payload["event"]["text"]) for o in taken] == [
        ("slack:T1:C1:0", "question 0"),
        ("slack:T1:C1:1", "question 1"),
    ]
    assert files(tmp) == []  # claimed: nothing kept on disk
    assert await events.recover(["slack:"]) == []
    assert not await EventLog(db).first("slack:T1:C1:0", EVENT)  # answered once


async def test_a_live_process_journal_is_left_alone(db: Database, tmp: Path) -> None:
    live = Journal(tmp)
    live.hold("slack:T1:C1:9", EVENT)
    assert await EventLog(db, journal=Journal(tmp)).recover(["slack:"]) == []
    assert len(files(tmp)) == 1
    live.close()


async def test_claimed_events_leave_no_message_text_on_disk(db: Database, tmp: Path) -> None:
    events = EventLog(db, journal=Journal(tmp))
    for i in range(5):
        events.hold(f"slack:T1:C1:{i}", EVENT)
    [path] = files(tmp)
    assert path.stat().st_size > 0
    assert all(await asyncio.gather(*(events.first(f"slack:T1:C1:{i}", EVENT) for i in range(5))))
    assert path.stat().st_size == 0
    assert events.journal is not None
    events.journal.close()
    assert files(tmp) == []


async def test_old_files_go_once_their_events_are_claimed(db: Database, tmp: Path) -> None:
    journal = Journal(tmp)
    journal.ROTATE = 0.0  # a file per event
    events = EventLog(db, journal=journal)
    events.hold("slack:T1:C1:a", EVENT)
    events.hold("slack:T1:C1:b", EVENT)
    assert len(files(tmp)) == 2
    await events.first("slack:T1:C1:a", EVENT)
    assert len(files(tmp)) == 1

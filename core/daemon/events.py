"""Per-job event channels: worker threads publish, Server-Sent-Event streams (asyncio) read.

Events live in memory only (progress is worthless after a restart; the job's state is in the
database). Each job keeps its latest events in a bounded buffer so a client that reconnects
with `Last-Event-ID` gets what it missed. Event ids carry this process's boot id, so an id
from before a restart is recognised as stale rather than skipping the new events.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobEvent:
    number: int
    type: str  # "queued", "state", "setup" (how it runs: CPU threads), "progress" or "end"
    data: dict[str, Any]


class _Channel:
    def __init__(self, keep: int) -> None:
        self.events: deque[JobEvent] = deque(maxlen=keep)
        self.next_number = 1
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


class EventBus:
    """Thread-safe publish; asyncio-friendly wait."""

    def __init__(self, keep_per_job: int = 512, keep_jobs: int = 512) -> None:
        self.boot_id = secrets.token_hex(4)
        self._keep_per_job = keep_per_job
        self._keep_jobs = keep_jobs
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._lock = threading.Lock()
        self.closed = False

    def _channel(self, job_id: str) -> _Channel:
        channel = self._channels.get(job_id)
        if channel is None:
            channel = self._channels[job_id] = _Channel(self._keep_per_job)
            while len(self._channels) > self._keep_jobs:
                old_id, old = next(iter(self._channels.items()))
                if old.waiters:
                    break  # never drop a channel someone is listening to
                del self._channels[old_id]
        return channel

    def publish(self, job_id: str, event_type: str, data: dict[str, Any]) -> None:
        with self._lock:
            channel = self._channel(job_id)
            channel.events.append(JobEvent(channel.next_number, event_type, data))
            channel.next_number += 1
            waiters = list(channel.waiters)
        for loop, event in waiters:
            _wake(loop, event)

    def event_id(self, event: JobEvent) -> str:
        return f"{self.boot_id}-{event.number}"

    def parse_event_id(self, value: str | None) -> int:
        """The event number after which to resume; 0 for none or a previous boot's id."""
        if not value:
            return 0
        boot, _, number = value.partition("-")
        if boot != self.boot_id or not number.isdigit():
            return 0
        return int(number)

    def since(self, job_id: str, after: int) -> list[JobEvent]:
        with self._lock:
            channel = self._channels.get(job_id)
            if channel is None:
                return []
            return [e for e in channel.events if e.number > after]

    def subscribe(self, job_id: str) -> asyncio.Event:
        """Register the running loop to be woken on the job's next event (or on close)."""
        event = asyncio.Event()
        with self._lock:
            self._channel(job_id).waiters.add((asyncio.get_running_loop(), event))
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        with self._lock:
            channel = self._channels.get(job_id)
            if channel is not None:
                channel.waiters = {w for w in channel.waiters if w[1] is not event}

    def close(self) -> None:
        """Wake every listener so streams end when the daemon stops."""
        with self._lock:
            self.closed = True
            waiters = [w for c in self._channels.values() for w in c.waiters]
        for loop, event in waiters:
            _wake(loop, event)


def _wake(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    try:
        loop.call_soon_threadsafe(event.set)
    except RuntimeError:
        pass  # that loop has closed: its stream is gone


def sse_message(event_type: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event_type}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")

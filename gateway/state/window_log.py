"""A sliding-window log of the in-process state (`gateway.state.memory`): the hits
of a count window, or each member's last time for a distinct one, and what changed
since the last snapshot write."""

from __future__ import annotations

import itertools
from array import array
from collections import deque

from gateway.state.snapshot import LogDelta


class WindowLog:
    """A sliding-window log: every hit's time (count windows) or each member's last time."""

    def __init__(self) -> None:
        self.hits: deque[float] = deque()
        self.members: dict[str, float] = {}
        self.window_s = 0.0  # the longest window it was used with, for the sweep
        # For the snapshot: hits only leave from the left (trim) and members are
        # moved to the end when seen, so what changed since the last write is
        # the last (len + popped - written) hits and the last (seen - written)
        # members; no per-call bookkeeping beyond two counters.
        self.popped = 0
        self.seen = 0
        self.written_hits = 0
        self.written_seen = 0

    def see(self, member: str, now: float) -> None:
        # Re-inserted at the end, so `members` stays ordered by last time and
        # trimming stops at the first fresh member instead of scanning them all
        # (a caller may have thousands of subjects in the window).
        self.members.pop(member, None)
        self.members[member] = now
        self.seen += 1

    def trim(self, horizon: float) -> None:
        while self.hits and self.hits[0] <= horizon:
            self.hits.popleft()
            self.popped += 1
        members = self.members
        while members:
            oldest = next(iter(members))
            if members[oldest] > horizon:
                break
            del members[oldest]

    def size(self, distinct: bool) -> int:
        return len(self.members) if distinct else len(self.hits)

    def oldest(self, distinct: bool) -> float:
        # Ordered by last time (see `see`); a wall clock stepping back only keeps
        # a member a little longer, erring towards counting it.
        return next(iter(self.members.values())) if distinct else self.hits[0]

    @classmethod
    def loaded(
        cls, window_s: float, hits: list[float], members: list[tuple[str, float]]
    ) -> WindowLog:
        log = cls()
        log.window_s = window_s
        log.hits.extend(hits)
        log.members.update(members)
        log.written_hits = len(hits)  # already in the file
        return log

    def changes(self, key: str) -> LogDelta | None:
        """What to write since the last time (and mark it written)."""
        total = len(self.hits) + self.popped
        new_hits = min(total - self.written_hits, len(self.hits))
        new_seen = min(self.seen - self.written_seen, len(self.members))
        self.written_hits, self.written_seen = total, self.seen
        if new_hits <= 0 and new_seen <= 0:
            return None
        hits = array("d", itertools.islice(reversed(self.hits), new_hits))
        hits.reverse()
        members = list(itertools.islice(reversed(self.members.items()), new_seen))
        members.reverse()
        return LogDelta(key, self.window_s, hits.tobytes(), members)

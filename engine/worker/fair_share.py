"""Choose which claimed jobs a worker starts, fairly across servers.

The queue is first come, first served: a burst of narrations from one busy server would
fill the batch and keep a quiet server's story waiting behind all of them. So when rows
free up, the worker claims a few jobs more than it has room for, starts those of the
servers it served longest ago (each server's own jobs in their queue order; jobs without
a server count as one server of their own), and hands the rest straight back to the queue
for the next free row, here or in another worker. Nothing is held back from other workers.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

from engine.queue.interfaces import Delivery

# How many jobs beyond its free rows a worker looks at to find other servers' jobs.
DEFAULT_LOOKAHEAD = 8
# Servers remembered (least recently served forgotten first): a forgotten one counts as
# never served, which only ever moves it forward.
REMEMBERED_SERVERS = 4096


class FairShare:
    """Remember when each server was last served; split claimed jobs into start and return."""

    def __init__(self, remembered: int = REMEMBERED_SERVERS) -> None:
        self._served: OrderedDict[int | None, int] = OrderedDict()
        self._clock = itertools.count(1)
        self._remembered = remembered

    def choose(
        self, deliveries: Sequence[Delivery], room: int
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Return up to ROOM jobs to start now, in order, and the rest to hand back."""
        waiting: OrderedDict[int | None, list[Delivery]] = OrderedDict()
        for delivery in deliveries:
            waiting.setdefault(delivery.job.guild_id, []).append(delivery)
        start: list[Delivery] = []
        while len(start) < room and waiting:
            # The server served longest ago; among never-served ones, the first in the queue.
            guild = min(waiting, key=lambda g: self._served.get(g, 0))
            jobs = waiting[guild]
            start.append(jobs.pop(0))
            if not jobs:
                del waiting[guild]
            self._mark_served(guild)
        chosen = {id(d) for d in start}
        rest = [d for d in deliveries if id(d) not in chosen]
        return start, rest

    def _mark_served(self, guild: int | None) -> None:
        self._served[guild] = next(self._clock)
        self._served.move_to_end(guild)
        while len(self._served) > self._remembered:
            self._served.popitem(last=False)

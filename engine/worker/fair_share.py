"""Hand claimed jobs to the generator fairly across servers.

The queue is first come, first served: a burst of 30 narrations from one busy server
would fill the batch and keep a quiet server's single story waiting behind all of them.
The worker therefore claims a few jobs more than it has room for and, whenever a slot
frees, starts the oldest job of the server that was served longest ago (jobs without a
server count as one server of their own). Within a server, jobs keep their order.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from engine.queue.interfaces import Delivery

# How many jobs a worker holds claimed beyond those it is generating: enough to see
# other servers' jobs behind a burst, few enough not to keep them from other workers.
DEFAULT_LOOKAHEAD = 8


class FairShare:
    """Claimed jobs waiting for a slot, taken round-robin by server."""

    def __init__(self) -> None:
        # Servers with waiting jobs, the one to serve next first.
        self._turns: OrderedDict[int | None, deque[Delivery]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._turns.values())

    def add(self, deliveries: Iterable[Delivery]) -> None:
        """Queue newly claimed jobs behind their own server's earlier ones."""
        for delivery in deliveries:
            guild = delivery.job.guild_id
            if guild not in self._turns:
                self._turns[guild] = deque()
            self._turns[guild].append(delivery)

    def take(self) -> Delivery | None:
        """Return the next job to start (the oldest of the server whose turn it is)."""
        if not self._turns:
            return None
        guild, jobs = next(iter(self._turns.items()))
        delivery = jobs.popleft()
        # This server goes to the back of the line; it leaves it when it has nothing left.
        del self._turns[guild]
        if jobs:
            self._turns[guild] = jobs
        return delivery

    def drain(self) -> list[Delivery]:
        """Remove and return every waiting job (to release them)."""
        waiting = [d for jobs in self._turns.values() for d in jobs]
        self._turns.clear()
        return waiting

"""The one error of the protocol: a job the worker cannot serve as it stands."""

from __future__ import annotations


class JobRejected(Exception):
    """Fail a job without retrying it: its request is malformed or can never be served.

    Raised by the requests' ``from_dict`` (naming the offending field) and returned or
    raised by a worker's batch processor; a retry would fail the same way.
    """

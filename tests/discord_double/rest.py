"""What REST handlers take and give back: the parsed call, the reply, and Discord's errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .models import UploadedFile
from .spec import Operation


class ApiError(Exception):
    """An error response in Discord's shape, optionally recorded as a violation."""

    def __init__(
        self, status: int, code: int, message: str, *, violation: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.violation = violation


@dataclass
class Call:
    """One REST request, parsed."""

    method: str
    path: str
    operation: Operation
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None
    files: list[UploadedFile] = field(default_factory=list)

    def flag(self, name: str) -> bool:
        """Read a boolean query parameter the way Discord does."""
        return self.query.get(name, "").lower() in {"true", "1"}


Reply = tuple[int, Any]
Handler = Callable[[Call], Awaitable[Reply]]

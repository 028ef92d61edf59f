"""Bounds of settings, read from their pydantic fields (one source for checks and for UIs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def field_bounds(model: type[BaseModel], name: str) -> tuple[Any, Any]:
    """Return a pydantic field's (ge, le) bounds, None where unbounded."""
    low: Any = None
    high: Any = None
    for rule in model.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high

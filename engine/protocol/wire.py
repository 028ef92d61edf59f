"""Strict reading of the JSON objects a job carries: every field present, none unknown."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from engine.protocol.errors import JobRejected


class WireObject:
    """One JSON object being read; errors name each field by its path (``lore[0].name``)."""

    def __init__(self, data: object, fields: Collection[str], *, path: str = "") -> None:
        """Check that ``data`` is an object holding exactly ``fields``."""
        self._path = path
        if not isinstance(data, Mapping):
            where = f"field {path!r}" if path else "the request"
            raise JobRejected(f"{where} must be an object, not {type(data).__name__}")
        missing = [name for name in fields if name not in data]
        if missing:
            raise JobRejected(f"missing field {self._names(missing)}")
        unknown = sorted(str(key) for key in data if key not in fields)
        if unknown:
            raise JobRejected(f"unknown field {self._names(unknown)}")
        self._data: Mapping[object, object] = data

    def path(self, name: str) -> str:
        """Return a field's path, as errors name it."""
        return f"{self._path}.{name}" if self._path else name

    def value(self, name: str) -> object:
        """Return a field's value unchecked (its reader checks it)."""
        return self._data[name]

    def text(self, name: str) -> str:
        """Return a string field."""
        value = self._data[name]
        if not isinstance(value, str):
            raise self._wrong(name, "a string")
        return value

    def optional_text(self, name: str) -> str | None:
        """Return a field that is a string or null."""
        value = self._data[name]
        if value is not None and not isinstance(value, str):
            raise self._wrong(name, "a string or null")
        return value

    def integer(self, name: str) -> int:
        """Return an integer field (a boolean is not one)."""
        value = self._data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "an integer")
        return value

    def flag(self, name: str) -> bool:
        """Return a boolean field."""
        value = self._data[name]
        if not isinstance(value, bool):
            raise self._wrong(name, "a boolean")
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        """Return a field that is a list of strings."""
        value = self._data[name]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self._wrong(name, "a list of strings")
        return tuple(value)

    def items(self, name: str) -> list[tuple[str, object]]:
        """Return a list field's items, each with its path (``turns[2]``)."""
        value = self._data[name]
        if not isinstance(value, list | tuple):
            raise self._wrong(name, "a list")
        return [(f"{self.path(name)}[{index}]", item) for index, item in enumerate(value)]

    def _wrong(self, name: str, expected: str) -> JobRejected:
        return JobRejected(f"field {self.path(name)!r} must be {expected}")

    def _names(self, names: list[str]) -> str:
        return ", ".join(repr(self.path(name)) for name in names)

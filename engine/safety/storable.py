"""Text every database can store: the one check at the engine's boundary.

Two kinds of character cannot be stored, whatever else a server allows:

- the NUL byte (U+0000): PostgreSQL's text types refuse it outright (SQLite keeps it,
  so a story holding one could never move to PostgreSQL);
- surrogates (U+D800 to U+DFFF): halves of a UTF-16 pair that never became a character
  (a broken copy-paste, a JSON escape without its partner). They have no UTF-8
  form, so no driver can even send them.

Every text a person hands the engine is checked here: story text through the content
policy (so the refusal is audited), a server's settings, an imported file field by
field, and display names, which are cleaned instead (a name must never lock a player
out of a story). This module imports nothing else of the project.
"""

from __future__ import annotations

from dataclasses import dataclass

NUL = "\x00"
REPLACEMENT = "\ufffd"
_SURROGATES = range(0xD800, 0xE000)


@dataclass(frozen=True)
class UnstorableCharacter:
    """The first character of a text that no database can store, and where it is."""

    index: int
    code_point: int

    @property
    def description(self) -> str:
        """Return what the character is, in words a player understands."""
        if self.code_point == 0:
            return "a NUL byte, which is invisible"
        return "a broken character, half of an emoji or other symbol"

    def __str__(self) -> str:
        return f"U+{self.code_point:04X} at character {self.index}"


def find_unstorable(text: str) -> UnstorableCharacter | None:
    """Return the first NUL byte or surrogate in TEXT, or None when every database can store it."""
    # Fast paths in C: a long, clean text (the usual case) is never walked in Python.
    has_nul = NUL in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as broken:
        surrogate = broken.start
    else:
        if not has_nul:
            return None
        surrogate = len(text)
    index = min(text.find(NUL) if has_nul else len(text), surrogate)
    return UnstorableCharacter(index=index, code_point=ord(text[index]))


def without_unstorable(text: str, *, replacement: str = "") -> str:
    """Return TEXT with every NUL byte and surrogate replaced by REPLACEMENT (default: removed)."""
    if find_unstorable(text) is None:
        return text
    return "".join(
        replacement if char == NUL or ord(char) in _SURROGATES else char for char in text
    )


def unstorable_reason(field: str, found: UnstorableCharacter) -> str:
    """Return the refusal of FIELD (e.g. "Your turn") for FOUND, saying what to do."""
    if found.code_point == 0:
        advice = "remove it and try again"
    else:
        advice = "type that character again (or leave it out) and try again"
    return f"{field} contains a character that cannot be stored ({found.description}): {advice}."

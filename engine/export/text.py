"""Plain-text and Markdown renderings of a story."""

from __future__ import annotations

import re

from engine.export.document import Aside, Passage, StoryDocument

# Characters that start inline Markdown structure anywhere in a line: escapes, code,
# emphasis, links and images, raw HTML and entities, tables, strikethrough.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")
# Characters that start block structure at the beginning of a line: headings, quotes,
# list bullets, setext underlines and thematic breaks.
_BLOCK_START = frozenset("#>+-=")
_ORDERED_ITEM = re.compile(r"(\d+)([.)])")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def paragraphs(text: str) -> list[str]:
    """Split text into paragraphs at blank lines, with line endings normalised."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip("\n") for p in _BLANK_LINES.split(text) if p.strip()]


def one_line(text: str) -> str:
    """Collapse all whitespace, for titles and names that must stay on one line."""
    return " ".join(text.split())


def escape_markdown_line(line: str) -> str:
    """Escape one line so Markdown shows it literally."""
    # Leading indentation would turn the line into a code block; it carries no meaning here.
    line = _INLINE_SPECIAL.sub(r"\\\1", line.lstrip())
    if line[:1] in _BLOCK_START:
        return "\\" + line
    ordered = _ORDERED_ITEM.match(line)
    if ordered:
        digits = ordered.group(1)
        return digits + "\\" + line[len(digits) :]
    return line


def escape_markdown(text: str) -> list[str]:
    """Return text as literal Markdown paragraphs, its line breaks kept as hard breaks."""
    return [
        "\\\n".join(escape_markdown_line(line) for line in para.split("\n"))
        for para in paragraphs(text)
    ]


def _quoted(paras: list[str]) -> str:
    return "\n>\n".join("\n".join("> " + line for line in p.split("\n")) for p in paras)


def _credited(label: str, text: str) -> list[str]:
    paras = escape_markdown(text) or [""]
    return [f"{label} {paras[0]}".rstrip(), *paras[1:]]


def render_markdown(doc: StoryDocument) -> str:
    """Render the story as Markdown in which players' text is never structure."""
    # Every '#' is escaped in the heading: trailing ones would otherwise close it.
    title = _INLINE_SPECIAL.sub(r"\\\1", one_line(doc.title)).replace("#", "\\#") or "Untitled"
    players = ", ".join(escape_markdown_line(one_line(p)) for p in doc.players) or "nobody yet"
    blocks: list[str] = [
        f"# {title}",
        "\\\n".join(
            [
                f"**Genre:** {escape_markdown_line(doc.genre)}",
                f"**Players:** {players}",
                f"**Dates:** {escape_markdown_line(doc.dates_line())}",
            ]
        ),
    ]
    if doc.premise.strip():
        blocks.append(_quoted(escape_markdown(doc.premise)))
    blocks.append("---")
    for entry in doc.entries:
        if isinstance(entry, Aside):
            author = escape_markdown_line(one_line(entry.author))
            blocks.append(_quoted(_credited(f"*Table talk, {author}:*", entry.text)))
            continue
        author = escape_markdown_line(one_line(entry.author))
        edited = " *(edited)*" if entry.edited_at is not None and not entry.is_narrator else ""
        blocks.extend(_credited(f"**{author}:**{edited}", entry.text))
        for index, alternative in enumerate(entry.alternatives, start=1):
            label = f"*Other version {index} of this passage:*"
            blocks.append(_quoted(_credited(label, alternative)))
    return "\n\n".join(blocks) + "\n"


def render_text(doc: StoryDocument) -> str:
    """Render the story as plain text, every passage exactly as written."""
    title = one_line(doc.title) or "Untitled"
    out: list[str] = [
        title,
        "=" * len(title),
        "",
        f"Genre: {doc.genre}",
        f"Players: {', '.join(one_line(p) for p in doc.players) or 'nobody yet'}",
        doc.dates_line(),
        "",
    ]
    if doc.premise.strip():
        out += [doc.premise.strip(), ""]
    out += ["* * *", ""]
    for entry in doc.entries:
        body = entry.text.replace("\r\n", "\n").strip("\n")
        if isinstance(entry, Aside):
            out += [f"[Table talk] {one_line(entry.author)}: {body}", ""]
            continue
        edited = " (edited)" if entry.edited_at is not None and not entry.is_narrator else ""
        out += [f"{one_line(entry.author)}:{edited}", body, ""]
        out += _alternatives_text(entry)
    return "\n".join(out)


def _alternatives_text(entry: Passage) -> list[str]:
    out: list[str] = []
    for index, alternative in enumerate(entry.alternatives, start=1):
        out += [f"  [Other version {index} of this passage]", alternative.strip("\n"), ""]
    return out

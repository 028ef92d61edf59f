from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable

import pytest

from engine.export import ExportOptions
from engine.export.document import build_document
from engine.export.epub import render_epub
from engine.export.html import render_html
from engine.export.text import escape_markdown_line, render_markdown, render_text
from engine.story.views import StoryTranscript

XHTML = "{http://www.w3.org/1999/xhtml}"
Build = Callable[..., StoryTranscript]
ALL = ExportOptions(include_table_talk=True, include_alternatives=True)


@pytest.fixture
def hostile(transcript_of: Build, hostile_texts: tuple[str, ...]) -> StoryTranscript:
    return transcript_of(
        list(hostile_texts),
        title="<script>alert(1)</script> # [t](http://evil.example)",
        table_talk=[(1, hostile_texts[0]), (2, hostile_texts[3])],
        alternatives={2: (hostile_texts[5], hostile_texts[4])},
    )


def _unescaped(line: str, index: int) -> bool:
    """Tell whether the character at INDEX is not preceded by an odd number of backslashes."""
    backslashes = len(line[:index]) - len(line[:index].rstrip("\\"))
    return backslashes % 2 == 0


def test_markdown_gives_player_text_no_structure(hostile: StoryTranscript) -> None:
    rendered = render_markdown(build_document(hostile, ALL))
    lines = rendered.split("\n")
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [lines[0]], "only the title is a heading"
    assert lines.count("---") == 1  # our own break between the title page and the story
    for line in lines[1:]:
        if line == "---":
            continue
        body = line.removeprefix("> ")
        # No block structure from players: headings, lists, quotes, fences, setext underlines.
        assert not re.match(r"\s*(#|[-+*] |\d+[.)] |```|~~~|===|---.)", body), line
        for match in re.finditer(r"\]\(|<|&|`|\[|\*|_", body):
            if match.group() == "*" and body.startswith(("**", "*Table talk", "*Other")):
                continue  # our own credit labels
            assert not _unescaped(body, match.start()), (line, match.group())
    assert "http://evil.example/steal" in rendered  # the text itself survives


def test_markdown_renders_as_plain_paragraphs_in_commonmark(hostile: StoryTranscript) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    rendered = render_markdown(build_document(hostile, ALL))
    html = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    out = html.render(rendered)
    assert out.count("<h1>") == 1 and "<h2>" not in out
    for tag in ("<a ", "<img", "<script", "<code", "<pre", "<ol", "<ul", "<table", "<s>", "<style"):
        assert tag not in out, tag
    assert out.count("<hr />") == 1  # ours, after the title page
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in out.replace("&#39;", "'")
    assert "&amp;amp;lt;b&amp;amp;gt;" in out  # the entity is shown as typed, not decoded


@pytest.mark.parametrize(
    ("line", "escaped"),
    [
        ("# title", "\\# title"),
        ("1. one", "1\\. one"),
        ("2) two", "2\\) two"),
        ("- item", "\\- item"),
        ("    indented code", "indented code"),
        ("a [b](c) d", "a \\[b\\](c) d"),
        ("x & y <z>", "x \\& y \\<z\\>"),
        ("plain words.", "plain words."),
    ],
)
def test_markdown_line_escaping(line: str, escaped: str) -> None:
    assert escape_markdown_line(line) == escaped


def test_html_shows_player_text_and_runs_none_of_it(hostile: StoryTranscript) -> None:
    page = render_html(build_document(hostile, ALL))
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))  # well-formed XML too
    assert [e.tag for e in root.iter() if e.tag in ("script", "img", "iframe", "a")] == []
    assert [e for e in root.iter("style")].__len__() == 1  # ours
    assert [e.tag for e in root.iter("link")] == ["link"]  # the data: icon
    texts = "".join(root.itertext())
    assert "<script>document.title='pwned'</script>" in texts
    assert "&amp;lt;b&amp;gt;" in texts  # entities typed by players stay as typed
    assert "<img src=x onerror=\"document.title='pwned'\">" in texts
    assert "\x0b" not in page and "\x01" not in page
    assert root.find("head/title") is not None
    assert root.findtext("head/title") == "<script>alert(1)</script> # [t](http://evil.example)"


def test_epub_documents_are_well_formed_and_inert(hostile: StoryTranscript) -> None:
    book = render_epub(build_document(hostile, ALL))
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        documents = [n for n in archive.namelist() if n.endswith((".xhtml", ".opf", ".xml"))]
        assert len(documents) >= 5
        texts = []
        for name in documents:
            root = ET.fromstring(archive.read(name))
            forbidden = {f"{XHTML}{t}" for t in ("script", "img", "iframe", "style")}
            assert not [e for e in root.iter() if e.tag in forbidden], name
            texts.append("".join(root.itertext()))
    assert any("<script>document.title='pwned'</script>" in t for t in texts)


def test_plain_text_is_as_typed_even_when_hostile(
    hostile: StoryTranscript, hostile_texts: tuple[str, ...]
) -> None:
    rendered = render_text(build_document(hostile, ALL))
    for text in hostile_texts:
        assert text in rendered

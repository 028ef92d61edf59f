from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable

import pytest

from engine.export import ExportFile, ExportFormat, ExportOptions, zip_export
from engine.export.document import Aside, Passage, build_document
from engine.export.formats import filename_for, slug
from engine.export.html import render_html
from engine.export.text import render_markdown, render_text
from engine.story.views import StoryTranscript

Build = Callable[..., StoryTranscript]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("The Lantern", "the-lantern"),
        ("../../etc/passwd", "etc-passwd"),
        ("C:\\Windows\\evil", "c-windows-evil"),
        ("Café Noir: Épisode 2", "cafe-noir-episode-2"),
        ("龍の物語", "story"),
        ("   ", "story"),
        ("x" * 300, "x" * 80),
    ],
)
def test_slug_is_safe_for_any_title(title: str, expected: str) -> None:
    assert slug(title) == expected


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_filename_has_the_format_extension_and_no_path_separators(fmt: ExportFormat) -> None:
    name = filename_for("a/b\\c", fmt)
    assert name == "a-b-c" + fmt.extension
    assert "/" not in name and "\\" not in name


def test_table_talk_is_placed_after_its_turn_and_only_when_asked(transcript_of: Build) -> None:
    transcript = transcript_of(
        ["one", "two"], table_talk=[(0, "before all"), (1, "after one"), (9, "after an undo")]
    )
    plain = build_document(transcript, ExportOptions())
    assert not any(isinstance(e, Aside) for e in plain.entries)

    doc = build_document(transcript, ExportOptions(include_table_talk=True))
    order = [e.text if isinstance(e, Aside) else e.number for e in doc.entries]
    assert order == ["before all", 1, "after one", 2, 3, 4, "after an undo"]


def test_alternatives_appear_only_when_asked(transcript_of: Build) -> None:
    transcript = transcript_of(["one"], alternatives={2: ("An older version.",)})
    without = build_document(transcript, ExportOptions())
    with_alts = build_document(transcript, ExportOptions(include_alternatives=True))
    assert all(not e.alternatives for e in without.entries if isinstance(e, Passage))
    narrator = next(e for e in with_alts.entries if isinstance(e, Passage) and e.is_narrator)
    assert narrator.alternatives == ("An older version.",)
    assert "An older version." in render_markdown(with_alts)
    assert "An older version." in render_text(with_alts)
    assert "An older version." in render_html(with_alts)
    for render in (render_markdown, render_text, render_html):
        assert "An older version." not in render(without)


def test_title_page_names_genre_players_and_dates(transcript_of: Build) -> None:
    finished = build_document(transcript_of(["one"]), ExportOptions())
    running = build_document(transcript_of(["one"], ended=False), ExportOptions())
    for render in (render_markdown, render_text, render_html):
        page = render(finished)
        assert "The Long Night" in page and "Fantasy" in page and "Alice, Bob" in page
        assert "Begun 1 March 2026, finished 3 March 2026" in page
        assert "still being written (last passage 1 March 2026)" in render(running)


def test_plain_text_keeps_player_text_exactly(transcript_of: Build) -> None:
    text = "  *Not bold*, <b>not html</b> & # not a heading\n\n[kept](as typed)"
    rendered = render_text(build_document(transcript_of([text]), ExportOptions()))
    assert text.strip("\n") in rendered
    assert "Alice:\n" in rendered and "Narrator:\n" in rendered


def test_markdown_credits_each_passage_to_its_author(transcript_of: Build) -> None:
    rendered = render_markdown(build_document(transcript_of(["one", "two"]), ExportOptions()))
    assert "**Alice:** one" in rendered
    assert "**Bob:** two" in rendered
    assert rendered.count("**Narrator:**") == 2


def test_html_styles_the_narrator_apart(transcript_of: Build) -> None:
    page = render_html(build_document(transcript_of(["one"]), ExportOptions()))
    assert '<section class="passage player" id="turn-1">' in page
    assert '<section class="passage narrator" id="turn-2">' in page
    assert "prefers-color-scheme: dark" in page
    assert 'name="viewport"' in page


def test_html_page_asks_for_nothing_from_the_network(transcript_of: Build) -> None:
    page = render_html(build_document(transcript_of(["see http://x.example"]), ExportOptions()))
    # The only URL-like text is the player's own, escaped into a paragraph.
    for needle in ("src=", "@import", "url(", "<script", '<link rel="stylesheet'):
        assert needle not in page
    assert "default-src 'none'" in page


def test_zip_export_holds_the_file_compressed() -> None:
    file = ExportFile("the-lantern.html", "text/html; charset=utf-8", b"<p>x</p>" * 5000)
    zipped = zip_export(file)
    assert zipped.filename == "the-lantern.zip"
    assert zipped.media_type == "application/zip"
    assert len(zipped.data) < len(file.data) // 10
    with zipfile.ZipFile(io.BytesIO(zipped.data)) as archive:
        (info,) = archive.infolist()
        assert info.filename == "the-lantern.html"
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read(info) == file.data


def test_a_story_of_thousands_of_turns_renders_quickly(transcript_of: Build) -> None:
    import time

    transcript = transcript_of([f"Passage {i} with some words." for i in range(5000)])
    doc = build_document(transcript, ExportOptions())
    started = time.perf_counter()
    for render in (render_markdown, render_text, render_html):
        assert "Passage 4999" in render(doc)
    assert time.perf_counter() - started < 20  # catches quadratic rendering, not slow machines


def test_formats_are_named_by_their_cli_values() -> None:
    assert [f.value for f in ExportFormat] == ["markdown", "text", "html", "epub", "json"]
    assert json.dumps(ExportFormat.HTML) == '"html"'

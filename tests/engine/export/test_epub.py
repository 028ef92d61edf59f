from __future__ import annotations

import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from engine.export import ExportOptions
from engine.export.document import build_document
from engine.export.epub import PASSAGES_PER_PART, render_epub
from engine.story.views import StoryTranscript

Build = Callable[..., StoryTranscript]
NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
    "x": "http://www.w3.org/1999/xhtml",
    "epub": "http://www.idpf.org/2007/ops",
}
ALL = ExportOptions(include_table_talk=True, include_alternatives=True)


def _book(transcript: StoryTranscript) -> bytes:
    return render_epub(build_document(transcript, ALL))


@pytest.fixture
def long_story(transcript_of: Build, hostile_texts: tuple[str, ...]) -> StoryTranscript:
    """A hostile story of two parts: one more than a part's worth of passages, and ten."""
    players = PASSAGES_PER_PART // 2 + 5
    texts = [hostile_texts[i % len(hostile_texts)] for i in range(players)]
    return transcript_of(texts, table_talk=[(3, "brb")], alternatives={2: ("Older.",)})


def test_mimetype_comes_first_stored_uncompressed(transcript_of: Build) -> None:
    with zipfile.ZipFile(io.BytesIO(_book(transcript_of(["one"])))) as book:
        first = book.infolist()[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert first.extra == b""
        assert book.read(first) == b"application/epub+zip"
    # Readers sniff the type at a fixed offset of the file itself.
    assert _book(transcript_of(["one"]))[30:58] == b"mimetypeapplication/epub+zip"


def test_container_package_and_navigation_fit_together(long_story: StoryTranscript) -> None:
    with zipfile.ZipFile(io.BytesIO(_book(long_story))) as book:
        names = set(book.namelist())
        container = ET.fromstring(book.read("META-INF/container.xml"))
        rootfile = container.find("c:rootfiles/c:rootfile", NS)
        assert rootfile is not None
        assert rootfile.get("media-type") == "application/oebps-package+xml"
        opf_path = PurePosixPath(rootfile.get("full-path", ""))
        package = ET.fromstring(book.read(str(opf_path)))
        assert package.get("version") == "3.0"

        metadata = package.find("opf:metadata", NS)
        assert metadata is not None
        identifier = metadata.find("dc:identifier", NS)
        assert identifier is not None and identifier.get("id") == package.get("unique-identifier")
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", identifier.text or "")
        assert metadata.findtext("dc:title", namespaces=NS) == "The Long Night"
        assert metadata.findtext("dc:language", namespaces=NS) == "en"
        modified = [m for m in metadata.findall("opf:meta", NS) if m.get("property")]
        assert [m.get("property") for m in modified] == ["dcterms:modified"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", modified[0].text or "")
        assert [c.text for c in metadata.findall("dc:creator", NS)] == ["Alice", "Bob"]

        folder = opf_path.parent
        items = {i.get("id"): i for i in package.findall("opf:manifest/opf:item", NS)}
        for item in items.values():
            assert str(folder / item.get("href", "")) in names
        navs = [i for i in items.values() if i.get("properties") == "nav"]
        assert len(navs) == 1
        spine = [r.get("idref") for r in package.findall("opf:spine/opf:itemref", NS)]
        assert spine == ["title", "part1", "part2"]
        assert all(ref in items for ref in spine)

        nav = ET.fromstring(book.read(str(folder / navs[0].get("href", ""))))
        toc = [n for n in nav.iter(f"{{{NS['x']}}}nav") if n.get(f"{{{NS['epub']}}}type") == "toc"]
        assert len(toc) == 1
        links = [a.get("href") for a in toc[0].iter(f"{{{NS['x']}}}a")]
        assert links == ["title.xhtml", "part1.xhtml", "part2.xhtml"]
        labels = ["".join(a.itertext()) for a in toc[0].iter(f"{{{NS['x']}}}a")]
        assert labels[1:] == ["Passages 1\u2013150", "Passages 151\u2013160"]

        for name in names:
            if name.endswith(".xhtml"):
                root = ET.fromstring(book.read(name))  # every content document is XML
                assert root.tag == f"{{{NS['x']}}}html"


def test_same_story_gives_the_same_book(transcript_of: Build) -> None:
    assert _book(transcript_of(["one", "two"])) == _book(transcript_of(["one", "two"]))


def test_unfinished_story_without_passages_is_still_a_book(transcript_of: Build) -> None:
    with zipfile.ZipFile(io.BytesIO(_book(transcript_of([], ended=False)))) as book:
        part = book.read("OEBPS/part1.xhtml").decode()
        assert "No passages have been written yet." in part
        assert "still being written" in book.read("OEBPS/title.xhtml").decode()


def _epubcheck() -> list[str]:
    found = shutil.which("epubcheck")
    if found is None:
        # Optional: CI images need not carry Java tools; the structural tests above always run.
        pytest.skip("epubcheck is not installed (apt-get install epubcheck)")
    path = Path(found).resolve()
    # Debian ships it as an executable jar, which needs binfmt_misc that containers lack.
    if path.suffix == ".jar" or path.read_bytes()[:2] == b"PK":
        java = shutil.which("java")
        if java is None:
            pytest.skip("epubcheck needs java, which is not installed")
        return [java, "-jar", str(path)]
    return [str(path)]


@pytest.mark.parametrize("kind", ["long hostile story", "empty unfinished story"])
def test_epubcheck_finds_no_problems(
    kind: str, transcript_of: Build, long_story: StoryTranscript, tmp_path: Path
) -> None:
    command = _epubcheck()
    transcript = long_story if kind.startswith("long") else transcript_of([], ended=False)
    book = tmp_path / "story.epub"
    book.write_bytes(_book(transcript))
    result = subprocess.run(
        [*command, str(book)], capture_output=True, text=True, timeout=180, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "No errors or warnings detected" in report, report

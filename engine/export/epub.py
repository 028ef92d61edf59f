"""EPUB 3 books: a zip with the mimetype first, a container, a package document and XHTML."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import UTC

from engine.export.document import Aside, Passage, StoryDocument
from engine.export.html import entry_elements, title_page, xml_text
from engine.export.text import one_line

# Readers slow down on very large XHTML files, so long stories are split into parts.
PASSAGES_PER_PART = 150
# Stable identifiers: the same story exported twice is recognised as the same book.
_BOOK_NAMESPACE = uuid.UUID("5b0f3f0e-6f57-4c4e-9c51-7a1d7e2b8c11")

CONTAINER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""

BOOK_CSS = """
body { font-family: serif; line-height: 1.5; margin: 0 5%; }
.title-page { text-align: center; margin-top: 20%; }
h1 { font-size: 2em; margin-bottom: .6em; }
.genre { text-transform: uppercase; letter-spacing: .1em; font-size: .85em; }
.players, .dates { font-size: .95em; }
.label { font-variant: small-caps; }
.premise { font-style: italic; margin-top: 2em; }
.passage { margin: 0 0 1.2em; }
.passage p { margin: 0 0 .5em; text-indent: 0; }
.by { font-family: sans-serif; font-weight: bold; font-size: .75em; margin: 0 0 .2em; }
.edited { font-weight: normal; }
.narrator { font-style: italic; border-left: 2px solid #999; padding-left: .8em; }
.narrator .by { font-style: normal; text-transform: uppercase; }
.talk { font-family: sans-serif; font-size: .8em; border: 1px dashed #999; padding: .3em .6em;
  margin: 0 0 1.2em; }
.talk p { margin: .2em 0; }
.alternatives { font-size: .9em; margin: 0 0 1.2em; }
.alternative { border-left: 1px solid #bbb; padding-left: .6em; margin: .4em 0; }
""".lstrip()

_XHTML_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
    'lang="en" xml:lang="en">\n'
)


def book_identifier(doc: StoryDocument) -> str:
    """Return the book's stable urn:uuid identifier."""
    seed = f"{doc.session_id}:{doc.begun_at.astimezone(UTC).isoformat()}:{doc.title}"
    return f"urn:uuid:{uuid.uuid5(_BOOK_NAMESPACE, seed)}"


def _xhtml(title: str, body: list[str]) -> str:
    return (
        _XHTML_HEAD
        + "<head>\n"
        + f"<title>{xml_text(title)}</title>\n"
        + '<link rel="stylesheet" type="text/css" href="style.css"/>\n'
        + "</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _parts(doc: StoryDocument) -> list[tuple[Passage | Aside, ...]]:
    parts: list[list[Passage | Aside]] = [[]]
    passages = 0
    for entry in doc.entries:
        if isinstance(entry, Passage):
            if passages and passages % PASSAGES_PER_PART == 0:
                parts.append([])
            passages += 1
        parts[-1].append(entry)
    return [tuple(p) for p in parts]


def _part_label(part: tuple[Passage | Aside, ...], index: int) -> str:
    numbers = [e.number for e in part if isinstance(e, Passage)]
    if not numbers:
        return "The story" if index == 1 else f"Part {index}"
    return f"Passages {numbers[0]}\u2013{numbers[-1]}"


def _package(doc: StoryDocument, part_count: int) -> str:
    modified = doc.last_change.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    creators = "".join(
        f'    <dc:creator id="creator{i}">{xml_text(one_line(name))}</dc:creator>\n'
        for i, name in enumerate(doc.players, start=1)
    )
    parts = range(1, part_count + 1)
    manifest = "".join(
        f'    <item id="part{i}" href="part{i}.xhtml" media-type="application/xhtml+xml"/>\n'
        for i in parts
    )
    spine = "".join(f'    <itemref idref="part{i}"/>\n' for i in parts)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="book-id" xml:lang="en">\n'
        '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f'    <dc:identifier id="book-id">{book_identifier(doc)}</dc:identifier>\n'
        f"    <dc:title>{xml_text(one_line(doc.title)) or 'Untitled'}</dc:title>\n"
        "    <dc:language>en</dc:language>\n"
        f"{creators}"
        f"    <dc:subject>{xml_text(doc.genre)}</dc:subject>\n"
        f"    <dc:date>{doc.begun_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</dc:date>\n"
        "    <dc:publisher>Taleweaver</dc:publisher>\n"
        f'    <meta property="dcterms:modified">{modified}</meta>\n'
        "  </metadata>\n"
        "  <manifest>\n"
        '    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
        'properties="nav"/>\n'
        '    <item id="css" href="style.css" media-type="text/css"/>\n'
        '    <item id="title" href="title.xhtml" media-type="application/xhtml+xml"/>\n'
        f"{manifest}"
        "  </manifest>\n"
        "  <spine>\n"
        '    <itemref idref="title"/>\n'
        f"{spine}"
        "  </spine>\n"
        "</package>\n"
    )


def _nav(doc: StoryDocument, parts: list[tuple[Passage | Aside, ...]]) -> str:
    items = [
        '<li><a href="title.xhtml">Title page</a></li>',
        *(
            f'<li><a href="part{i}.xhtml">{xml_text(_part_label(part, i))}</a></li>'
            for i, part in enumerate(parts, start=1)
        ),
    ]
    body = [
        '<nav epub:type="toc" id="toc">',
        "<h1>Contents</h1>",
        "<ol>",
        *items,
        "</ol>",
        "</nav>",
    ]
    return _xhtml(one_line(doc.title) or "Contents", body)


def render_epub(doc: StoryDocument) -> bytes:
    """Build an EPUB 3 book of the story."""
    parts = _parts(doc)
    title = one_line(doc.title) or "Untitled"
    files: list[tuple[str, str]] = [
        ("META-INF/container.xml", CONTAINER_XML),
        ("OEBPS/content.opf", _package(doc, len(parts))),
        ("OEBPS/nav.xhtml", _nav(doc, parts)),
        ("OEBPS/style.css", BOOK_CSS),
        ("OEBPS/title.xhtml", _xhtml(title, title_page(doc))),
    ]
    for index, part in enumerate(parts, start=1):
        body = ["<main>", *entry_elements(part, collapsible=False), "</main>"]
        if not part:
            body = ["<main>", "<p>No passages have been written yet.</p>", "</main>"]
        files.append(
            (f"OEBPS/part{index}.xhtml", _xhtml(f"{title}: {_part_label(part, index)}", body))
        )
    # Fixed entry times keep the bytes identical for identical stories.
    stamp = doc.last_change.astimezone(UTC).timetuple()[:6]
    stamp = max(stamp, (1980, 1, 1, 0, 0, 0))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        # The mimetype entry must come first and be stored uncompressed (OCF 3).
        book.writestr(
            zipfile.ZipInfo("mimetype", stamp), "application/epub+zip", zipfile.ZIP_STORED
        )
        for name, content in files:
            book.writestr(
                zipfile.ZipInfo(name, stamp), content.encode("utf-8"), zipfile.ZIP_DEFLATED
            )
    return buffer.getvalue()

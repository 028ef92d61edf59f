"""A self-contained HTML page for reading a story, and the XHTML pieces EPUB reuses.

Everything written here is well-formed XML as well as HTML, so the same fragments serve
the web page and the EPUB's XHTML documents. Every piece of story text goes through
``html.escape``: players' text is shown, never interpreted.
"""

from __future__ import annotations

import html
import re

from engine.export.document import Aside, Passage, StoryDocument
from engine.export.text import one_line, paragraphs

# XML 1.0 forbids these characters even as references; surrogates cannot be encoded.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# No fonts, images or scripts from anywhere: the policy makes the page refuse them even if
# something slipped through, and the data: icon stops the browser asking for /favicon.ico.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

PAGE_CSS = """
:root {
  color-scheme: light dark;
  --bg: #fbf8f1; --fg: #221f1a; --muted: #6d665b; --accent: #8a4b0f;
  --narrator-bg: #f1eadb; --narrator-edge: #c9a86a; --rule: #ded4c1;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #161412; --fg: #ebe5da; --muted: #a59d90; --accent: #e7b56c;
    --narrator-bg: #221e19; --narrator-edge: #8c6b34; --rule: #3b352d;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--fg);
  font: 1.0625rem/1.65 Georgia, "Iowan Old Style", "Palatino Linotype", "Book Antiqua", serif;
  overflow-wrap: anywhere;
}
.title-page, main, footer { max-width: 40rem; margin: 0 auto; padding: 0 1.1rem; }
.title-page {
  min-height: 70vh; display: flex; flex-direction: column; justify-content: center;
  text-align: center; border-bottom: 1px solid var(--rule); margin-bottom: 2rem;
}
h1 { font-size: clamp(1.8rem, 7vw, 3rem); line-height: 1.15; margin: 0 0 1rem; }
.genre {
  color: var(--accent); text-transform: uppercase; letter-spacing: .12em;
  font-size: .85rem; margin: 0 0 .5rem;
}
.players, .dates { color: var(--muted); margin: .25rem 0; }
.label { font-variant: small-caps; letter-spacing: .05em; }
.premise { font-style: italic; margin: 1.5rem auto 0; max-width: 32rem; }
.passage { margin: 0 0 1.6rem; }
.passage p { margin: 0 0 .7rem; }
.by {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-weight: 600;
  font-size: .8rem; letter-spacing: .04em; color: var(--accent); margin: 0 0 .2rem;
}
.edited { font-weight: 400; color: var(--muted); }
.narrator {
  background: var(--narrator-bg); border-left: 3px solid var(--narrator-edge);
  padding: .8rem 1rem .2rem; border-radius: 0 .4rem .4rem 0; font-style: italic;
}
.narrator .by { font-style: normal; color: var(--muted); text-transform: uppercase; }
.talk {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: .85rem;
  color: var(--muted); border: 1px dashed var(--rule); border-radius: .4rem;
  padding: .4rem .7rem; margin: 0 0 1.6rem;
}
.talk p { margin: .2rem 0; }
.alternatives { margin: -.8rem 0 1.6rem; font-size: .9rem; color: var(--muted); }
.alternatives summary { cursor: pointer; }
.alternative { border-left: 2px solid var(--rule); padding-left: .8rem; margin: .6rem 0; }
.alternative p { margin: 0 0 .5rem; }
footer {
  color: var(--muted); font-size: .8rem; text-align: center;
  border-top: 1px solid var(--rule); margin-top: 2.5rem; padding-top: 1rem; padding-bottom: 2rem;
}
@media (min-width: 48rem) { body { font-size: 1.125rem; } }
@media print {
  .title-page { min-height: 0; page-break-after: always; }
  .narrator { background: none; }
}
""".strip()


def xml_text(text: str) -> str:
    """Escape text for HTML and XML, dropping characters XML cannot carry."""
    text = _SURROGATE.sub("\ufffd", _NOT_XML.sub("", text))
    return html.escape(text, quote=True)


def paragraph_elements(text: str) -> list[str]:
    """Return text as <p> elements, its single line breaks kept as <br/>."""
    return [
        "<p>" + "<br/>".join(xml_text(line) for line in para.split("\n")) + "</p>"
        for para in paragraphs(text)
    ]


def title_page(doc: StoryDocument) -> list[str]:
    """Return the title page: title, genre, players, dates and premise."""
    players = ", ".join(one_line(p) for p in doc.players) or "nobody yet"
    out = [
        '<header class="title-page">',
        f"<h1>{xml_text(one_line(doc.title))}</h1>",
        f'<p class="genre">{xml_text(doc.genre)}</p>',
        f'<p class="players"><span class="label">Players:</span> {xml_text(players)}</p>',
        f'<p class="dates">{xml_text(doc.dates_line())}</p>',
    ]
    if doc.premise.strip():
        out += ['<div class="premise">', *paragraph_elements(doc.premise), "</div>"]
    out.append("</header>")
    return out


def _passage(entry: Passage, *, collapsible: bool) -> list[str]:
    kind = "narrator" if entry.is_narrator else "player"
    edited = (
        ' <span class="edited">(edited)</span>'
        if entry.edited_at is not None and not entry.is_narrator
        else ""
    )
    out = [
        f'<section class="passage {kind}" id="turn-{entry.number}">',
        f'<p class="by">{xml_text(one_line(entry.author))}{edited}</p>',
        *paragraph_elements(entry.text),
        "</section>",
    ]
    if entry.alternatives:
        count = len(entry.alternatives)
        label = f"Other version{'s' if count > 1 else ''} of this passage ({count})"
        # EPUB readers handle <details> unevenly, so there the versions are simply shown.
        if collapsible:
            out += ['<details class="alternatives">', f"<summary>{label}</summary>"]
        else:
            out += ['<div class="alternatives">', f'<p class="by">{label}</p>']
        for alternative in entry.alternatives:
            out += ['<div class="alternative">', *paragraph_elements(alternative), "</div>"]
        out.append("</details>" if collapsible else "</div>")
    return out


def _aside(entry: Aside) -> list[str]:
    paras = paragraph_elements(entry.text) or ["<p></p>"]
    label = f'<span class="by">{xml_text(one_line(entry.author))}, table talk:</span> '
    return ['<aside class="talk">', paras[0][:3] + label + paras[0][3:], *paras[1:], "</aside>"]


def entry_elements(entries: tuple[Passage | Aside, ...], *, collapsible: bool) -> list[str]:
    """Return the passages and table talk as XHTML elements, in reading order."""
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, Aside):
            out += _aside(entry)
        else:
            out += _passage(entry, collapsible=collapsible)
    return out


def render_html(doc: StoryDocument) -> str:
    """Render the story as one self-contained HTML page made for reading on any screen."""
    title = xml_text(one_line(doc.title))
    passages = doc.passage_count
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}"/>',
        '<meta name="color-scheme" content="light dark"/>',
        '<meta name="generator" content="Taleweaver"/>',
        '<link rel="icon" href="data:,"/>',
        f"<title>{title}</title>",
        f"<style>\n{PAGE_CSS}\n</style>",
        "</head>",
        "<body>",
        *title_page(doc),
        "<main>",
        *entry_elements(doc.entries, collapsible=True),
        "</main>",
        f"<footer><p>{title} · {passages} passage{'s' if passages != 1 else ''} · "
        "told with Taleweaver</p></footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"

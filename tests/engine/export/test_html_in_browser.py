"""The exported HTML page in a real browser: it renders, runs nothing and fetches nothing.

Chromium is driven over the DevTools protocol, which reports every console message,
exception and network request of the page, and takes phone-sized screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.export import ExportOptions
from engine.export.document import build_document
from engine.export.html import render_html
from engine.story.views import StoryTranscript

from conftest import IN_CI

BROWSER_TIMEOUT = 60
PHONE = {"width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": True}
SCREENSHOT_HEIGHT = 2000
TITLE = "The Long Night"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found is not None:
            return found
    message = "chromium is not installed (apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)


class DevTools:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
                continue
            self.events.append(data)
            for method, waiter in list(self._waiters):
                if method == data["method"] and not waiter.done():
                    waiter.set_result(data["params"])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        return await future

    def next_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        return future

    def of(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e["method"] == method]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def _serve(page: bytes) -> AsyncIterator[tuple[str, list[str]]]:
    requests: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        requests.append(request.path)
        if request.path != "/story.html":
            return web.Response(status=404)
        return web.Response(body=page, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/story.html", requests
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-port=0",
        "--remote-allow-origins=*",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        while not port_file.exists() or not port_file.read_text().strip():
            if process.returncode is not None:
                pytest.fail(f"chromium exited: {(tmp_path / 'chromium.log').read_text()}")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            targets = await (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                try:
                    yield tools
                finally:
                    await tools.close()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        log.close()


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    """Return width, height and how many distinct bytes the decoded image data holds."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    idat, offset = b"", 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.fixture
def long_page(
    transcript_of: Callable[..., StoryTranscript], hostile_texts: tuple[str, ...]
) -> bytes:
    """A 200-turn story page (100 players' passages, each answered) with hostile text."""
    texts = [
        hostile_texts[i % len(hostile_texts)] if i % 7 == 0 else f"Passage {i}: the tide turns."
        for i in range(100)
    ]
    texts[50] = "averyveryverylongwordwithoutanyspaces" * 12  # must wrap on a phone
    transcript = transcript_of(
        texts, title=TITLE, table_talk=[(4, hostile_texts[0])], alternatives={6: ("Older.",)}
    )
    options = ExportOptions(include_table_talk=True, include_alternatives=True)
    return render_html(build_document(transcript, options)).encode()


async def _screenshot(tools: DevTools, path: Path) -> tuple[int, int, int]:
    shot = await tools.send(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": PHONE["width"], "height": SCREENSHOT_HEIGHT, "scale": 1},
    )
    png = base64.b64decode(shot["data"])
    await asyncio.to_thread(path.write_bytes, png)
    return _png_size_and_colours(png)


async def test_long_story_page_renders_on_a_phone_and_stays_inert(
    long_page: bytes, tmp_path: Path
) -> None:
    async with asyncio.timeout(BROWSER_TIMEOUT), _serve(long_page) as (url, served):
        async with _browser(tmp_path) as tools:
            for domain in ("Runtime", "Log", "Network", "Page"):
                await tools.send(f"{domain}.enable")
            await tools.send("Emulation.setDeviceMetricsOverride", **PHONE)
            loaded = tools.next_event("Page.loadEventFired")
            await tools.send("Page.navigate", url=url)
            await loaded

            # Injected markup never ran: it would have renamed the page or added elements.
            assert await tools.evaluate("document.title") == TITLE
            assert await tools.evaluate("document.querySelectorAll('script').length") == 0
            assert await tools.evaluate("document.querySelectorAll('img, iframe').length") == 0
            assert (
                await tools.evaluate("document.querySelectorAll('section.passage').length") == 200
            )
            assert await tools.evaluate("document.querySelectorAll('.narrator').length") == 100
            body_text = await tools.evaluate("document.body.innerText")
            assert "<script>document.title='pwned'</script>" in body_text
            assert "Passage 99: the tide turns." in body_text
            # Readable on a phone: nothing is wider than the screen.
            assert await tools.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

            light = await _screenshot(tools, tmp_path / "story-phone.png")
            await tools.send(
                "Emulation.setEmulatedMedia",
                features=[{"name": "prefers-color-scheme", "value": "dark"}],
            )
            background = await tools.evaluate("getComputedStyle(document.body).backgroundColor")
            dark = await _screenshot(tools, tmp_path / "story-phone-dark.png")

            console = tools.of("Runtime.consoleAPICalled")
            exceptions = tools.of("Runtime.exceptionThrown")
            logged = [e["entry"] for e in tools.of("Log.entryAdded")]
            requested = [r["request"]["url"] for r in tools.of("Network.requestWillBeSent")]

    assert console == [] and exceptions == []
    assert [e for e in logged if e["level"] in ("error", "warning")] == [], logged
    assert requested == [url], "the page asks for nothing beyond itself"
    assert served == ["/story.html"]
    assert background == "rgb(22, 20, 18)"
    for width, height, colours in (light, dark):
        assert (width, height) == (PHONE["width"], SCREENSHOT_HEIGHT)
        assert colours > 50, "the screenshot shows text, not a blank page"
    assert (tmp_path / "story-phone.png").stat().st_size > 20_000

"""The gateway websocket: HELLO, heartbeats, IDENTIFY/RESUME, and event dispatch per session."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

if TYPE_CHECKING:
    from .server import DiscordDouble

log = logging.getLogger(__name__)

# Intent bits (https://discord.com/developers/docs/events/gateway#gateway-intents).
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
DIRECT_MESSAGE_REACTIONS = 1 << 13

_BACKLOG = 2000
# Close codes after which Discord forgets the session; anything else may RESUME.
_FINAL_CLOSE_CODES = {1000, 1001}


@dataclass
class GatewaySession:
    """One identified gateway session, kept for RESUME while its socket is away."""

    id: str
    intents: int
    seq: int = 0
    backlog: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # [shard id, shard count] from IDENTIFY; None for an unsharded client.
    shard: tuple[int, int] | None = None

    def has(self, intent: int) -> bool:
        """Tell whether the session asked for an intent."""
        return bool(self.intents & intent)

    def serves(self, guild_id: int | None) -> bool:
        """Tell whether a server's events come to this session, as Discord assigns them.

        A server belongs to shard (server id >> 22) % shard count; direct messages to
        shard 0.
        """
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id


@dataclass(frozen=True)
class Dispatch:
    """An event to send: which intent gates it and how to strip it without message content."""

    event: str
    data: dict[str, Any]
    intent: int | None = None
    strip_content: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class GatewayHub:
    """Serve the gateway websocket and fan events out to live and resumable sessions."""

    def __init__(self, double: DiscordDouble, *, heartbeat_interval_ms: int) -> None:
        self._double = double
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, GatewaySession] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        # Sockets the server closed itself: their sessions stay resumable whatever code follows.
        self._dropped: set[web.WebSocketResponse] = set()
        self.identify_count = 0
        self.resume_count = 0
        self.presence_updates: list[dict[str, Any]] = []

    @property
    def connected(self) -> bool:
        """Tell whether some session has a live socket."""
        return any(s.ws is not None and not s.ws.closed for s in self.sessions.values())

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Run one gateway connection until it closes."""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            self._double.record_violation(
                f"gateway: connected with {request.query_string!r}, expected v=10&encoding=json"
            )
        session: GatewaySession | None = None
        try:
            await self._send(
                ws, {"op": 10, "d": {"heartbeat_interval": self._heartbeat_interval_ms}}
            )
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    self._double.record_violation(f"gateway: unexpected {message.type.name} frame")
                    continue
                payload = json.loads(message.data)
                session = await self._receive(ws, payload, session)
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
                log.debug("gateway socket closed with %s", ws.close_code)
                if ws.close_code in _FINAL_CLOSE_CODES and ws not in self._dropped:
                    self.sessions.pop(session.id, None)
            self._dropped.discard(ws)
            self._double.notify()
        return ws

    async def _receive(
        self, ws: web.WebSocketResponse, payload: dict[str, Any], session: GatewaySession | None
    ) -> GatewaySession | None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            await self._send(ws, {"op": 11})
        elif op == 2:
            session = await self._identify(ws, data)
        elif op == 6:
            session = await self._resume(ws, data)
        elif op == 3 and isinstance(data, dict):
            self.presence_updates.append(data)
        elif op == 8:
            await self._send_members_chunk(ws, session, data)
        elif op == 4:
            pass  # voice state updates need no answer here
        else:
            self._double.record_violation(f"gateway: unknown opcode {op!r}")
            await ws.close(code=4001, message=b"Unknown opcode")
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Any) -> GatewaySession | None:
        problems = _identify_problems(data, self._double.token)
        for problem in problems:
            self._double.record_violation(f"gateway IDENTIFY: {problem}")
        if problems:
            code = 4004 if "token" in " ".join(problems) else 4002
            await ws.close(code=code, message=b"Invalid IDENTIFY")
            return None
        self.identify_count += 1
        session = GatewaySession(id=secrets.token_hex(16), intents=int(data["intents"]), ws=ws)
        self.sessions[session.id] = session
        ready = self._double.ready_payload(session.id)
        if isinstance(data.get("shard"), list):
            ready["shard"] = data["shard"]  # sharded clients read their shard back from READY
            session.shard = (int(data["shard"][0]), int(data["shard"][1]))
        others = [w for w in self._double.world.guilds.values() if w is not self._double.world]
        ready["guilds"] = [
            *(g for g in ready["guilds"] if session.serves(int(g["id"]))),
            *(
                {"id": str(w.guild_id), "unavailable": True}
                for w in others
                if session.serves(w.guild_id)
            ),
        ]
        await self._send_event(session, "READY", ready)
        if self._double.world.bot_joined:
            await self._send_guild_create(session)
        for world in others:
            payload = world.guild_create_payload(all_members=session.has(GUILD_MEMBERS))
            await self._send_event(session, "GUILD_CREATE", payload)
        self._double.notify()
        return session

    async def _send_guild_create(self, session: GatewaySession, *, joined: bool = False) -> None:
        guild = self._double.world.guild_create_payload(all_members=session.has(GUILD_MEMBERS))
        if joined:
            # Only the GUILD_CREATE that follows READY says `unavailable: false`; a server
            # the bot was just added to comes without the field.
            del guild["unavailable"]
        await self._send_event(session, "GUILD_CREATE", guild)

    async def guild_joined(self) -> None:
        """Send GUILD_CREATE to every session, as when the bot is added to the server."""
        for session in list(self.sessions.values()):
            await self._send_guild_create(session, joined=True)

    async def _resume(self, ws: web.WebSocketResponse, data: Any) -> GatewaySession | None:
        if not isinstance(data, dict) or data.get("token") != self._double.token:
            self._double.record_violation("gateway RESUME: missing or wrong token")
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            # Discord answers an unknown session with op 9 (not resumable); the client identifies.
            await self._send(ws, {"op": 9, "d": False})
            return None
        session.ws = ws
        self.resume_count += 1
        last_seen = int(data.get("seq") or 0)
        async with session.send_lock:
            for seq, event, event_data in session.backlog:
                if seq > last_seen:
                    await self._send(ws, {"op": 0, "s": seq, "t": event, "d": event_data})
        await self._send_event(session, "RESUMED", {})
        self._double.notify()
        return session

    async def _send_members_chunk(
        self, ws: web.WebSocketResponse, session: GatewaySession | None, data: Any
    ) -> None:
        if session is None:
            self._double.record_violation("gateway: REQUEST_GUILD_MEMBERS before IDENTIFY")
            return
        world = self._double.world
        chunk = {
            "guild_id": str(world.guild_id),
            "members": [m.member_payload() for m in world.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if isinstance(data, dict) and data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._send_event(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def dispatch(self, dispatch: Dispatch) -> None:
        """Send an event to every session that asked for it, live or awaiting RESUME."""
        for session in list(self.sessions.values()):
            if dispatch.intent is not None and not session.has(dispatch.intent):
                continue
            data = copy.deepcopy(dispatch.data)
            if dispatch.strip_content is not None and not session.has(MESSAGE_CONTENT):
                data = dispatch.strip_content(data)
            await self._send_event(session, dispatch.event, data)

    async def _send_event(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        guild_id = _guild_of(event, data)
        direct = guild_id is None and "channel_id" in data  # a direct message's event
        if (guild_id is not None or direct) and not session.serves(guild_id):
            return  # another shard's
        async with session.send_lock:
            session.seq += 1
            session.backlog.append((session.seq, event, data))
            del session.backlog[:-_BACKLOG]
            ws = session.ws
            if ws is not None and not ws.closed:
                await self._send(ws, {"op": 0, "s": session.seq, "t": event, "d": data})

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        payload.setdefault("s", None)
        payload.setdefault("t", None)
        payload.setdefault("d", None)
        try:
            await ws.send_str(json.dumps(payload))
        except (ConnectionResetError, RuntimeError):
            log.debug("gateway socket went away before %s", payload.get("t") or payload["op"])

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every socket from the server side; sessions stay resumable."""
        for ws in list(self._sockets):
            self._dropped.add(ws)
            await ws.close(code=code, message=b"Dropped by the test")

    async def send_op(self, op: int, data: Any = None) -> None:
        """Send a bare opcode (7 RECONNECT, 9 INVALID SESSION) to every live socket."""
        if op == 9 and data is False:
            self.sessions.clear()
        for ws in list(self._sockets):
            await self._send(ws, {"op": op, "d": data})

    async def close(self) -> None:
        """Close every socket as the server shuts down."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutdown")
        self.sessions.clear()


def _guild_of(event: str, data: dict[str, Any]) -> int | None:
    """Return the server an event is about, if any (GUILD_* events name it as their id)."""
    raw = data.get("guild_id")
    if raw is None and event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        raw = data.get("id")
    return int(raw) if raw is not None else None


def _identify_problems(data: Any, token: str) -> list[str]:
    if not isinstance(data, dict):
        return ["payload is not an object"]
    problems = []
    if data.get("token") != token:
        problems.append("missing or wrong token")
    if not isinstance(data.get("intents"), int):
        problems.append("intents (an integer) is required")
    properties = data.get("properties")
    if not isinstance(properties, dict) or not {"os", "browser", "device"} <= properties.keys():
        problems.append("properties needs os, browser and device")
    return problems

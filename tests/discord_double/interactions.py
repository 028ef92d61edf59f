"""Build interaction data the way Discord's client would from the bot's synced commands."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .models import DoubleChannel, DoubleUser, UploadedFile, walk_components
from .world import GuildWorld, Role

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = (
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)
# Stores an uploaded file and returns its attachment object.
HostFile = Callable[[str, bytes], dict[str, Any]]


class InvocationError(AssertionError):
    """A test asked for an interaction Discord's client could not produce."""


def find_command(
    synced: Mapping[int | None, list[dict[str, Any]]], guild_id: int, name: str, kind: int = 1
) -> dict[str, Any]:
    """Find a synced command, preferring the guild's own over a global one."""
    for scope in (guild_id, None):
        for command in synced.get(scope, []):
            if command["name"] == name and int(command.get("type") or 1) == kind:
                return command
    known = sorted({c["name"] for cs in synced.values() for c in cs})
    raise InvocationError(
        f"the bot never synced a command named {name!r} (type {kind}); synced: {known or 'none'}"
    )


class CommandDataBuilder:
    """Turn a command path and plain option values into APPLICATION_COMMAND interaction data."""

    def __init__(self, world: GuildWorld, host_file: HostFile) -> None:
        self._world = world
        self._host_file = host_file
        self._resolved: dict[str, dict[str, Any]] = {}

    def build(
        self,
        command: dict[str, Any],
        path: Sequence[str],
        options: Mapping[str, Any],
        *,
        focused: str | None = None,
    ) -> dict[str, Any]:
        """Return the interaction's data object (name, options, resolved)."""
        self._resolved = {}
        definitions = list(command.get("options") or [])
        label = f"/{command['name']}"
        leaf: list[dict[str, Any]] = []
        top = leaf
        for part in path:
            sub = next(
                (
                    o
                    for o in definitions
                    if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
                ),
                None,
            )
            if sub is None:
                choices = [o["name"] for o in definitions if o["type"] in (1, 2)]
                raise InvocationError(f"{label} has no subcommand {part!r} (has {choices})")
            label += f" {part}"
            nested: list[dict[str, Any]] = []
            leaf.append({"type": sub["type"], "name": part, "options": nested})
            leaf, definitions = nested, list(sub.get("options") or [])
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in definitions):
            names = [o["name"] for o in definitions]
            raise InvocationError(f"{label} needs a subcommand path, one of {names}")
        leaf.extend(self._options(label, definitions, options, focused))
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": int(command.get("type") or 1),
            "options": top,
        }
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if self._resolved:
            data["resolved"] = self._resolved
        return data

    def _options(
        self,
        label: str,
        definitions: list[dict[str, Any]],
        values: Mapping[str, Any],
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in definitions}
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            raise InvocationError(f"{label} has no option(s) {unknown}; it has {sorted(by_name)}")
        if focused is not None and focused not in by_name:
            raise InvocationError(f"{label} has no option {focused!r} to autocomplete")
        if focused is not None and not by_name[focused].get("autocomplete"):
            raise InvocationError(f"{label} option {focused!r} does not use autocomplete")
        result = []
        for definition in definitions:
            name = definition["name"]
            if name not in values:
                if definition.get("required") and focused is None:
                    raise InvocationError(f"{label}: required option {name!r} not given")
                continue
            if name == focused:
                # Discord sends whatever has been typed so far, unconverted, while autocompleting.
                value: Any = str(values[name])
                result.append(
                    {"type": definition["type"], "name": name, "value": value, "focused": True}
                )
                continue
            value = self._convert(f"{label} {name}", definition, values[name])
            result.append({"type": definition["type"], "name": name, "value": value})
        return result

    def _convert(self, label: str, definition: Mapping[str, Any], raw: Any) -> Any:
        kind = int(definition["type"])
        if kind == STRING:
            value = _expect(label, raw, str)
            _check_length(label, definition, value)
        elif kind in (INTEGER, NUMBER):
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise InvocationError(f"{label}: expected a number, got {raw!r}")
            if kind == INTEGER and not isinstance(raw, int):
                raise InvocationError(f"{label}: expected an integer, got {raw!r}")
            value = raw
            low, high = definition.get("min_value"), definition.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise InvocationError(f"{label}: {value} is outside [{low}, {high}]")
        elif kind == BOOLEAN:
            value = _expect(label, raw, bool)
        elif kind == USER:
            value = self._resolve_user(label, raw)
        elif kind == CHANNEL:
            value = self._resolve_channel(label, definition, raw)
        elif kind == ROLE:
            value = self._resolve_role(label, raw)
        elif kind == MENTIONABLE:
            value = (
                self._resolve_role(label, raw)
                if isinstance(raw, Role)
                else self._resolve_user(label, raw)
            )
        elif kind == ATTACHMENT:
            value = self._resolve_attachment(label, raw)
        else:
            raise InvocationError(f"{label}: option type {kind} is not supported by the double")
        choices = definition.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            allowed = [c["value"] for c in choices]
            raise InvocationError(f"{label}: {value!r} is not one of the choices {allowed}")
        return value

    def _resolve_user(self, label: str, raw: Any) -> str:
        user = raw if isinstance(raw, DoubleUser) else self._world.user(int(raw))
        if user is None:
            raise InvocationError(f"{label}: no member {raw!r} in the guild")
        users = self._resolved.setdefault("users", {})
        members = self._resolved.setdefault("members", {})
        users[str(user.id)] = user.payload()
        members[str(user.id)] = {
            **user.member_payload(with_user=False),
            "permissions": str(self._world.permissions(user)),
        }
        return str(user.id)

    def _resolve_channel(self, label: str, definition: Mapping[str, Any], raw: Any) -> str:
        channel = (
            raw if isinstance(raw, DoubleChannel) else self._world.channels_by_id.get(int(raw))
        )
        if channel is None:
            raise InvocationError(f"{label}: no channel {raw!r} in the guild")
        allowed = definition.get("channel_types")
        if allowed and channel.type not in allowed:
            raise InvocationError(f"{label}: channel type {channel.type} not in {allowed}")
        data = self._world.channel_payload(channel)
        data["permissions"] = str(self._world.permissions(self._world.bot))
        self._resolved.setdefault("channels", {})[str(channel.id)] = data
        return str(channel.id)

    def _resolve_role(self, label: str, raw: Any) -> str:
        role_id = raw.id if isinstance(raw, Role) else int(raw)
        role = next((r for r in self._world.roles.values() if r.id == role_id), None)
        if role is None:
            raise InvocationError(f"{label}: no role {raw!r} in the guild")
        self._resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        return str(role.id)

    def _resolve_attachment(self, label: str, raw: Any) -> str:
        if not (isinstance(raw, tuple) and len(raw) == 2):
            raise InvocationError(f"{label}: pass an attachment as (filename, bytes)")
        attachment = self._host_file(str(raw[0]), bytes(raw[1]))
        self._resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        return str(attachment["id"])


def attachment_payload(upload: UploadedFile, *, url: str) -> dict[str, Any]:
    """Return an attachment object as the API serialises it."""
    data: dict[str, Any] = {
        "id": str(upload.id),
        "filename": upload.filename,
        "size": len(upload.content),
        "url": url,
        "proxy_url": url,
    }
    if upload.content_type:
        data["content_type"] = upload.content_type
    if upload.description:
        data["description"] = upload.description
    return data


def component_data(
    message_components: list[dict[str, Any]], custom_id: str, values: Sequence[str] | None
) -> dict[str, Any]:
    """Return the data of a click or selection on a message component."""
    component = next(
        (c for c in walk_components(message_components) if c.get("custom_id") == custom_id), None
    )
    if component is None:
        ids = [c["custom_id"] for c in walk_components(message_components) if "custom_id" in c]
        raise InvocationError(f"no component with custom_id {custom_id!r} (found {ids})")
    if component.get("disabled"):
        raise InvocationError(f"component {custom_id!r} is disabled; a user cannot use it")
    kind = int(component["type"])
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
    if kind == 2:
        if values:
            raise InvocationError(f"{custom_id!r} is a button; it takes no values")
        return data
    chosen = list(values or [])
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not low <= len(chosen) <= high:
        raise InvocationError(f"{custom_id!r} takes {low} to {high} values, got {chosen}")
    if kind == 3:
        offered = [o["value"] for o in component.get("options", [])]
        stray = [v for v in chosen if v not in offered]
        if stray:
            raise InvocationError(f"{custom_id!r} offers {offered}, not {stray}")
    data["values"] = chosen
    return data


def modal_submit_data(modal: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the data of a submitted modal, mirroring its layout with the typed values."""
    used: set[str] = set()

    def fill(component: Mapping[str, Any]) -> dict[str, Any]:
        kind = int(component["type"])
        if kind == 1:
            return {"type": 1, "components": [fill(c) for c in component.get("components", [])]}
        if kind == 18:
            return {"type": 18, "component": fill(component["component"])}
        custom_id = component.get("custom_id")
        if custom_id is None:
            return {"type": kind}
        used.add(custom_id)
        if kind == 4:
            text = str(values.get(custom_id, component.get("value") or ""))
            if component.get("required", True) and not text:
                raise InvocationError(f"modal field {custom_id!r} is required")
            _check_length(f"modal field {custom_id!r}", component, text)
            return {"type": 4, "custom_id": custom_id, "value": text}
        return {"type": kind, "custom_id": custom_id, "values": list(values.get(custom_id, []))}

    components = [fill(c) for c in modal.get("components", [])]
    stray = sorted(set(values) - used)
    if stray:
        raise InvocationError(f"the modal has no fields {stray}")
    return {"custom_id": modal["custom_id"], "components": components}


def _expect(label: str, raw: Any, kind: type) -> Any:
    if not isinstance(raw, kind):
        raise InvocationError(f"{label}: expected {kind.__name__}, got {raw!r}")
    return raw


def _check_length(label: str, definition: Mapping[str, Any], value: str) -> None:
    low, high = definition.get("min_length"), definition.get("max_length")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise InvocationError(f"{label}: length {len(value)} is outside [{low}, {high}]")

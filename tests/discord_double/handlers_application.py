"""REST handlers for the bot's own identity: its user, application, gateway and commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .models import DoubleChannel
from .rest import ApiError, Call, Handler, Reply
from .spec import validate_command_definitions
from .state import DoubleState

APPLICATION_FLAGS = (1 << 15) | (1 << 19) | (1 << 23)


class ApplicationRoutes(DoubleState):
    """Users, DMs, the application, gateway discovery and application commands."""

    def _application_routes(self) -> dict[tuple[str, str], Handler]:
        app_commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        return {
            ("GET", "/users/@me"): self._get_me,
            ("GET", "/users/{user_id}"): self._get_user,
            ("POST", "/users/@me/channels"): self._open_dm,
            ("GET", "/oauth2/applications/@me"): self._get_application,
            ("GET", "/applications/@me"): self._get_application,
            ("GET", "/gateway"): self._get_gateway,
            ("GET", "/gateway/bot"): self._get_gateway_bot,
            ("GET", app_commands): self._get_commands,
            ("PUT", app_commands): self._put_commands,
            ("POST", app_commands): self._post_command,
            ("GET", guild_commands): self._get_commands,
            ("PUT", guild_commands): self._put_commands,
            ("POST", guild_commands): self._post_command,
        }

    # ------------------------------------------------------------ gateway payloads

    def ready_payload(self, session_id: str) -> dict[str, Any]:
        """Return READY's data for a new session."""
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None, bot=True)
        return {
            "v": 10,
            "user": user,
            "user_settings": {},
            "guilds": (
                [{"id": str(self.world.guild_id), "unavailable": True}]
                if self.world.bot_joined
                else []
            ),
            "guild_join_requests": [],
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.world.application_id), "flags": APPLICATION_FLAGS},
            "geo_ordered_rtc_regions": ["local"],
            "auth": {},
            "_trace": ['["discord-api-double"]'],
        }

    def application_payload(self) -> dict[str, Any]:
        """Return the bot's application object."""
        return {
            "id": str(self.world.application_id),
            "name": "Taleweaver",
            "icon": None,
            "description": "Round-robin storytelling",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.world.owner.payload(),
            "team": None,
            "flags": APPLICATION_FLAGS,
            "bot": self.bot_user.payload(),
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "rpc_origins": [],
            "approximate_guild_count": 1,
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "flags_new": str(APPLICATION_FLAGS),
            "eligible_oauth2_scopes": ["applications.commands", "bot"],
            "is_monetized": False,
            "explicit_content_filter": 0,
            "integration_types_config": {"0": {}},
        }

    # --------------------------------------------------------------- handlers

    async def _get_me(self, call: Call) -> Reply:
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None, locale="en-US", bio="")
        return 200, user

    async def _get_user(self, call: Call) -> Reply:
        user = self.world.user(int(call.params["user_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return 200, user.payload()

    async def _open_dm(self, call: Call) -> Reply:
        recipient = self.world.user(int(call.body["recipient_id"]))
        if recipient is None:
            raise ApiError(404, 10013, "Unknown User")
        channel = next(
            (
                c
                for c in self.world.channels_by_id.values()
                if c.type == 1 and c.recipient_ids == [recipient.id]
            ),
            None,
        )
        if channel is None:
            channel = self.world.add_channel(
                DoubleChannel(self.ids.next(), "", 1, recipient_ids=[recipient.id])
            )
        return 200, self.world.channel_payload(channel)

    async def _get_application(self, call: Call) -> Reply:
        return 200, self.application_payload()

    async def _get_gateway(self, call: Call) -> Reply:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, call: Call) -> Reply:
        return 200, {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }

    def _command_scope(self, call: Call) -> int | None:
        if int(call.params["application_id"]) != self.world.application_id:
            raise ApiError(
                404,
                10002,
                "Unknown Application",
                violation="application id is not the bot's own",
            )
        guild_id = call.params.get("guild_id")
        if guild_id is None:
            return None
        self._guild(guild_id)
        return int(guild_id)

    async def _get_commands(self, call: Call) -> Reply:
        return 200, self.synced_commands.get(self._command_scope(call), [])

    async def _put_commands(self, call: Call) -> Reply:
        scope = self._command_scope(call)
        commands = list(call.body or [])
        # Schema errors were caught before the handler; these are Discord's extra rules.
        problems = [
            p for p in validate_command_definitions(commands, self.spec) if p.startswith("/")
        ]
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))
        self.synced_commands[scope] = [self._stored_command(scope, c) for c in commands]
        return 200, self.synced_commands[scope]

    async def _post_command(self, call: Call) -> Reply:
        scope = self._command_scope(call)
        problems = [
            p for p in validate_command_definitions(call.body, self.spec) if p.startswith("/")
        ]
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))
        stored = self._stored_command(scope, call.body)
        existing = [
            c
            for c in self.synced_commands.get(scope, [])
            if (c["name"], c["type"]) != (stored["name"], stored["type"])
        ]
        self.synced_commands[scope] = [*existing, stored]
        return 201, stored

    def _stored_command(self, scope: int | None, definition: Mapping[str, Any]) -> dict[str, Any]:
        kind = int(definition.get("type") or 1)
        # Discord keeps a command's id across syncs while its name and type stay the same.
        key = (scope, str(definition["name"]), kind)
        command_id = self._command_ids.setdefault(key, self.ids.next())
        stored = {
            "id": str(command_id),
            "application_id": str(self.world.application_id),
            "version": str(self.ids.next()),
            "type": kind,
            "name": definition["name"],
            "description": definition.get("description") or "",
            "default_member_permissions": _opt_str(definition.get("default_member_permissions")),
            "dm_permission": definition.get("dm_permission", True),
            "nsfw": bool(definition.get("nsfw", False)),
            "contexts": definition.get("contexts"),
            "integration_types": definition.get("integration_types") or [0],
            "options": list(definition.get("options") or []),
        }
        for key_name in ("name_localizations", "description_localizations"):
            if definition.get(key_name) is not None:
                stored[key_name] = definition[key_name]
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)

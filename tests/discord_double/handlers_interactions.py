"""REST handlers for answering interactions: the callback and the interaction webhook."""

from __future__ import annotations

import time
from typing import Any

from .message_model import MessageModel
from .models import EPHEMERAL, LOADING, CallbackRecord, InteractionRecord, StoredMessage
from .rest import ApiError, Call, Handler, Reply

# Interaction type -> callback types Discord accepts for it.
_CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


class InteractionRoutes(MessageModel):
    """Interaction callbacks, follow-ups, and edits of interaction responses."""

    def _interaction_routes(self) -> dict[tuple[str, str], Handler]:
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        return {
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"): self._callback,
            ("POST", hook): self._post_followup,
            ("GET", hook + "/messages/@original"): self._get_webhook_message,
            ("PATCH", hook + "/messages/@original"): self._edit_webhook_message,
            ("DELETE", hook + "/messages/@original"): self._delete_webhook_message,
            ("GET", hook + "/messages/{message_id}"): self._get_webhook_message,
            ("PATCH", hook + "/messages/{message_id}"): self._edit_webhook_message,
            ("DELETE", hook + "/messages/{message_id}"): self._delete_webhook_message,
        }

    async def _callback(self, call: Call) -> Reply:
        record = self.interactions.get(int(call.params["interaction_id"]))
        if record is None or record.token != call.params["interaction_token"]:
            raise ApiError(
                404,
                10062,
                "Unknown interaction",
                violation="callback for an interaction the double never sent",
            )
        if record.callback is not None:
            raise ApiError(
                400,
                40060,
                "Interaction has already been acknowledged.",
                violation=f"interaction {record.id} acknowledged twice",
            )
        elapsed = time.monotonic() - record.created_at
        if elapsed > self.interaction_ack_timeout:
            raise ApiError(
                404,
                10062,
                "Unknown interaction",
                violation=f"acknowledged after {elapsed:.2f}s; Discord drops interactions "
                f"not answered within {self.interaction_ack_timeout:g}s (defer first)",
            )
        body = call.body or {}
        kind = int(body.get("type", 0))
        if kind not in _CALLBACKS_FOR.get(record.type, set()):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                violation=f"callback type {kind} is not valid for interaction type {record.type}",
            )
        data = body.get("data")
        if kind in (4, 7):
            self._check_message_rules(data or {}, call.files, creating=kind == 4)
        record.callback = CallbackRecord(kind, data)
        message: StoredMessage | None = None
        if kind in (4, 5):
            flags = int((data or {}).get("flags") or 0) & EPHEMERAL
            if kind == 5:
                body_data: dict[str, Any] = {"content": "", "flags": flags | LOADING}
            else:
                body_data = {**(data or {}), "flags": int((data or {}).get("flags") or 0)}
            message = self._interaction_message(record, body_data, call.files)
            record.original = message
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind in (6, 7):
            source = self._source_message(record)
            record.original = source
            if kind == 7 and source is not None:
                self._apply_edit(source, data or {}, call.files)
                await self._dispatch_message("MESSAGE_UPDATE", source)
                message = source
        self.notify()
        if not call.flag("with_response"):
            return 204, None
        interaction = {
            "id": str(record.id),
            "type": record.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(message is not None and message.ephemeral),
        }
        reply: dict[str, Any] = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
        if message is not None and kind in (4, 7):
            # Discord documents the resource's message only for types 4 and 7.
            reply["resource"] = {"type": kind, "message": message.payload}
        return 200, reply

    def _source_message(self, record: InteractionRecord) -> StoredMessage | None:
        raw = record.payload.get("message")
        return self.messages.get(int(raw["id"])) if raw else None

    def _interaction_for_webhook(self, call: Call) -> InteractionRecord:
        token = call.params["webhook_token"]
        record = next((r for r in self.interactions.values() if r.token == token), None)
        if int(call.params["webhook_id"]) != self.world.application_id or record is None:
            raise ApiError(
                404,
                10015,
                "Unknown Webhook",
                violation="webhook is not an interaction webhook the double issued",
            )
        if record.callback is None:
            raise ApiError(
                404,
                10015,
                "Unknown Webhook",
                violation=f"webhook used before interaction {record.id} was acknowledged",
            )
        age = time.monotonic() - record.created_at
        if age > self.interaction_token_lifetime:
            raise ApiError(
                401,
                50027,
                "Invalid Webhook Token",
                violation=f"interaction {record.id} followed up after {age:.0f}s; its token "
                f"lasts {self.interaction_token_lifetime:g}s (15 minutes on Discord)",
            )
        return record

    def _webhook_target(self, call: Call, record: InteractionRecord) -> StoredMessage:
        message_id = call.params.get("message_id")
        if message_id is None:
            if record.original is None:
                raise ApiError(404, 10008, "Unknown Message")
            return record.original
        for message in self.interaction_responses(record):
            if message.id == int(message_id):
                return message
        raise ApiError(404, 10008, "Unknown Message")

    async def _post_followup(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        body = call.body or {}
        self._check_message_rules(body, call.files, creating=True)
        original = record.original
        if (
            original is not None
            and original.flags & LOADING
            and original.author_id == self.bot_user.id
            and not original.deleted
        ):
            # The first follow-up after a deferred response replaces the "thinking" message
            # (keeping its visibility); once that message is deleted, follow-ups are new.
            self._apply_edit(original, body, call.files, finish_loading=True)
            await self._dispatch_message("MESSAGE_UPDATE", original)
            message = original
        else:
            message = self._interaction_message(record, body, call.files)
            record.followups.append(message)
            await self._dispatch_message("MESSAGE_CREATE", message)
        return (200, message.payload) if call.flag("wait") else (204, None)

    async def _get_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        return 200, self._webhook_target(call, record).payload

    async def _edit_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        message = self._webhook_target(call, record)
        self._check_message_rules(call.body or {}, call.files, creating=False)
        self._apply_edit(message, call.body or {}, call.files, finish_loading=True)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return 200, message.payload

    async def _delete_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        await self._delete(self._webhook_target(call, record))
        return 204, None

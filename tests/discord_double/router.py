"""REST routing: read the request, check it against the spec, run the handler, record it."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from .message_model import MessageModel
from .messages import attachment_descriptions
from .models import RequestRecord, UploadedFile
from .rate_limits import RateLimiter, bucket_rule
from .rest import ApiError, Call, Handler
from .spec import Operation

API_PREFIX = "/api/v10"
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


class RestRouter(MessageModel):
    """Turn HTTP requests into handler calls, and Discord-shaped responses back."""

    # (method, spec template) -> handler; DiscordDouble builds it from every handler family.
    _handlers: dict[tuple[str, str], Handler]
    # Discord's per-route buckets and global limit, with the headers that tell of them.
    rate_limiter: RateLimiter

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        raw_path = request.rel_url.raw_path
        if not raw_path.startswith(API_PREFIX + "/"):
            self.record_violation(f"{method} {raw_path}: unhandled route (not under {API_PREFIX})")
            return _error(404, 0, "404: Not Found")
        path = "/".join(unquote(part) for part in raw_path[len(API_PREFIX) :].split("/"))
        query = dict(request.query)
        try:
            body, files = await self._read_body(request)
        except ApiError as exc:
            return self._fail(method, path, None, query, exc)
        found = self.spec.find_operation(method, path)
        if found is None:
            where = "the path exists" if self.spec.path_exists(path) else "no such path"
            unknown = ApiError(
                404,
                0,
                "404: Not Found",
                violation=f"unhandled route: not in Discord's API spec ({where} for other methods)",
            )
            return self._fail(method, path, None, query, unknown, body)
        operation, params = found
        problems = self._check_request(request, operation, params, query, body, files)
        if problems:
            for problem in problems:
                self.record_violation(f"{method} {path}: {problem}")
            unauthorised = any("Authorization" in p for p in problems)
            response = (
                _error(401, 0, "401: Unauthorized") if unauthorised else _invalid_form(problems)
            )
            return self._finish(method, path, operation, query, body, response)
        limited = self._take_rate_limit(method, operation.template)
        if limited is not None:
            return self._finish(method, path, operation, query, body, limited)
        verdict = self.rate_limiter.take(method, operation.template, params)
        if verdict.refusal is not None:
            refused = _json(429, verdict.refusal)
            refused.headers.update(verdict.headers)
            return self._finish(method, path, operation, query, body, refused)
        handler = self._handlers.get((method, operation.template))
        if handler is None:
            unimplemented = ApiError(
                404,
                0,
                "404: Not Found",
                violation=f"unhandled route: {operation.template} is in the spec "
                "but the double does not implement it",
            )
            return self._fail(method, path, operation, query, unimplemented, body)
        call = Call(method, path, operation, params, query, body, files)
        try:
            status, data = await handler(call)
        except ApiError as exc:
            failed = self._fail(method, path, operation, query, exc, body)
            failed.headers.update(verdict.headers)
            return failed
        if self.validate_responses and data is not None:
            self._check_response(call, status, data)
        response = _json(status, data) if data is not None else web.Response(status=204)
        response.headers.update(verdict.headers)
        return self._finish(method, path, operation, query, body, response)

    def _check_request(
        self,
        request: web.Request,
        operation: Operation,
        params: dict[str, str],
        query: dict[str, str],
        body: Any,
        files: list[UploadedFile],
    ) -> list[str]:
        problems = []
        auth = request.headers.get("Authorization")
        expected = f"Bot {self.token}"
        if operation.bot_token_required and auth != expected:
            problems.append("missing or wrong 'Authorization: Bot <token>' header")
        elif auth is not None and auth != expected:
            problems.append("wrong Authorization header")
        problems.extend(self.spec.validate_path_parameters(operation, params))
        problems.extend(self.spec.validate_query(operation, query))
        content_type = request.content_type
        if body is not None or files:
            problems.extend(self.spec.validate_body(operation, content_type, body or {}))
        elif operation.definition.get("requestBody", {}).get("required"):
            problems.append("a request body is required")
        return problems

    def _check_response(self, call: Call, status: int, data: Any) -> None:
        pointer = f"{call.operation.pointer}/responses/{status}/content/application~1json/schema"
        node: Any = self.spec.document
        for part in pointer.strip("/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                return
            node = node[key]
        for problem in self.spec.schema_errors(pointer, data, root="(response)"):
            self.record_violation(
                f"{call.method} {call.path}: the double answered badly: {problem}"
            )

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.body_exists:
            return None, []
        if request.content_type == "multipart/form-data":
            return await self._read_multipart(request)
        raw = await request.read()
        if not raw:
            return None, []
        if request.content_type != "application/json":
            raise ApiError(
                400,
                50109,
                "The request body contains invalid JSON.",
                violation=f"unexpected content type {request.content_type!r}",
            )
        try:
            return json.loads(raw), []
        except json.JSONDecodeError as exc:
            raise ApiError(
                400,
                50109,
                "The request body contains invalid JSON.",
                violation=f"body is not JSON: {exc}",
            ) from exc

    async def _read_multipart(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        reader = await request.multipart()
        payload: Any = None
        parts: list[tuple[int, str, bytes, str | None]] = []
        too_big: list[str] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, 50035, "Invalid Form Body", violation="nested multipart body")
            name = part.name
            data = bytearray()
            while chunk := await part.read_chunk():
                data.extend(chunk)
            if name == "payload_json":
                try:
                    payload = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise ApiError(
                        400,
                        50109,
                        "The request body contains invalid JSON.",
                        violation=f"payload_json is not JSON: {exc}",
                    ) from exc
                continue
            match = _FILE_FIELD.match(name or "")
            if match is None:
                raise ApiError(
                    400,
                    50035,
                    "Invalid Form Body",
                    violation=f"unexpected multipart field {name!r}",
                )
            filename = part.filename or f"file{match.group(1)}"
            if len(data) > self.upload_limit:
                too_big.append(f"{filename} ({len(data)} bytes)")
            content_type = part.headers.get("Content-Type")
            parts.append((int(match.group(1)), filename, bytes(data), content_type))
        if too_big:
            raise ApiError(
                413,
                40005,
                "Request entity too large",
                violation=f"upload over the {self.upload_limit}-byte limit: {', '.join(too_big)}",
            )
        descriptions = attachment_descriptions(payload)
        files = [
            self._store_file(filename, data, content_type, descriptions.get(index))
            for index, filename, data, content_type in parts
        ]
        return payload, files

    def _take_rate_limit(self, method: str, template: str) -> web.Response | None:
        for rule in self._rate_limits:
            if rule.method == method and rule.template == template and rule.remaining > 0:
                rule.remaining -= 1
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": rule.retry_after,
                    "global": rule.is_global,
                }
                if rule.is_global:
                    body["code"] = 0
                response = _json(429, body)
                response.headers.update(
                    {
                        "Retry-After": str(max(1, round(rule.retry_after))),
                        "X-RateLimit-Limit": "5",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
                        "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
                        "X-RateLimit-Bucket": bucket_rule(method, template).hash,
                        "X-RateLimit-Scope": "global" if rule.is_global else "user",
                        # discord.py treats a 429 without Via as a Cloudflare ban.
                        "Via": "1.1 google",
                    }
                )
                return response
        return None

    def _fail(
        self,
        method: str,
        path: str,
        operation: Operation | None,
        query: dict[str, str],
        exc: ApiError,
        body: Any = None,
    ) -> web.Response:
        if exc.violation:
            self.record_violation(f"{method} {path}: {exc.violation}")
        response = _error(exc.status, exc.code, exc.message)
        return self._finish(method, path, operation, query, body, response)

    def _finish(
        self,
        method: str,
        path: str,
        operation: Operation | None,
        query: dict[str, str],
        body: Any,
        response: web.Response,
    ) -> web.Response:
        template = operation.template if operation else None
        self.requests.append(
            RequestRecord(method, path, template, query, body, response.status, time.monotonic())
        )
        self.notify()
        return response

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        upload = self._files.get(int(request.match_info["attachment_id"]))
        if upload is None:
            return _error(404, 0, "404: Not Found")
        content_type = upload.content_type or "application/octet-stream"
        return web.Response(body=upload.content, headers={"Content-Type": content_type})


def _json(status: int, data: Any) -> web.Response:
    # discord.py decodes JSON only when the content type is exactly application/json.
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json(status, {"message": message, "code": code})


def _invalid_form(problems: list[str]) -> web.Response:
    errors = {
        str(index): {"_errors": [{"code": "BASE_TYPE_INVALID", "message": problem}]}
        for index, problem in enumerate(problems)
    }
    return _json(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})

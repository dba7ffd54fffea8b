"""There is no Docker engine here: parse the deployment files and check them against the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from distillguard.cli import build_parser
from distillguard.settings import ENV_PREFIX, Settings

DOCKER = Path(__file__).resolve().parent.parent / "docker"
REPO = DOCKER.parent


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_every_distillguard_variable_in_compose_is_a_real_setting():
    fields = set(Settings.model_fields)
    services = compose()["services"]
    for name in ("topics", "worker"):
        env = services[name]["environment"]
        assert env, name
        for key, value in env.items():
            assert key.startswith(ENV_PREFIX), key
            field = key[len(ENV_PREFIX):].lower()
            assert field in fields, f"{name}: {key} is not a setting"
        Settings(**{k[len(ENV_PREFIX):].lower(): v for k, v in env.items()})  # values validate too


def test_compose_topics_match_the_contract_defaults_and_broker_service():
    services = compose()["services"]
    env = services["worker"]["environment"]
    defaults = Settings()
    for key in ("events_topic", "dlq_topic", "alerts_topic", "feedback_topic"):
        assert env[f"{ENV_PREFIX}{key.upper()}"] == getattr(defaults, key)
    host, port = env["DISTILLGUARD_BOOTSTRAP_SERVERS"].split(":")
    assert host in services and services[host]["image"].startswith("apache/kafka:")
    kafka_env = services[host]["environment"]
    assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]


def test_compose_commands_are_real_subcommands():
    parser = build_parser()
    for name in ("topics", "worker"):
        parser.parse_args(compose()["services"][name]["command"])


def test_kafka_image_version_matches_local_broker():
    script = (DOCKER / "kafka-local.sh").read_text()
    local = re.search(r'DG_KAFKA_VERSION="\$\{DG_KAFKA_VERSION:-([0-9.]+)\}"', script).group(1)
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{local}"


def test_dockerfile_runs_the_cli_and_exposes_the_web_port():
    rows = dockerfile()
    froms = [rest for word, rest in rows if word == "FROM"]
    assert froms and all(f.startswith("python:3.11") for f in froms)
    entry = [rest for word, rest in rows if word == "ENTRYPOINT"]
    assert entry == ['["distillguard"]']
    assert [rest for word, rest in rows if word == "CMD"] == ['["worker"]']
    port = str(Settings().web_port)
    assert [rest for word, rest in rows if word == "EXPOSE"] == [port]
    health = " ".join(rest for word, rest in rows if word == "HEALTHCHECK")
    assert f"127.0.0.1:{port}/healthz" in health
    copied = {shlex.split(rest)[0] for word, rest in rows if word == "COPY" and not rest.startswith("--")}
    for package in ("distillguard", "streams", "detectors", "schemas"):
        assert package in copied and (REPO / package / "__init__.py").exists()
    env = " ".join(rest for word, rest in rows if word == "ENV")
    for key in re.findall(r"(DISTILLGUARD_\w+)=", env):
        assert key[len(ENV_PREFIX):].lower() in Settings.model_fields

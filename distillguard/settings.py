"""One settings object for every entry point: environment (``DISTILLGUARD_*``) over an optional TOML file.

Precedence, highest first: explicit keyword arguments, environment variables,
the TOML file named by ``DISTILLGUARD_CONFIG`` (or ``--config``), defaults.
Secrets are ``SecretStr`` so they never appear in a repr or a log line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

ENV_PREFIX = "DISTILLGUARD_"
ALERT_FORMATS = ("contract", "ocsf", "ecs")  # alert_formats values (docs/SIEM.md)
# Kafka's legal topic names (kafka.common.internals.Topic): the rule for topic settings, the app id (it prefixes
# the worker's internal topics, whose longest suffix is "-tenant-state-changelog", hence at most 200 characters)
# and replay's run ids, which name topics
TOPIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
TOPIC_NAME_MAX = 249
_APP_ID_MAX = 200
# the topics of each role (the format topics only when their format is enabled): no two may be one topic
_TOPIC_ROLES = ("events_topic", "dlq_topic", "alerts_topic", "feedback_topic", "notifications_topic")


class Settings(BaseSettings):
    """Runtime configuration of workers and tools (see README, "Configuration")."""

    # allow_inf_nan=False: "inf" seconds would turn a checkpoint or idle timer off without saying so
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, allow_inf_nan=False)

    # Kafka connection
    bootstrap_servers: str = Field("localhost:9092", description="comma-separated host:port list")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(None, description="read the SASL password from this file")
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True

    # topics
    events_topic: str = "llm.usage.events"
    dlq_topic: str = "llm.usage.dlq"
    alerts_topic: str = "extraction.alerts"
    feedback_topic: str = "extraction.feedback"
    alert_formats: str = Field("contract", description="alert formats to publish, comma-separated: contract, ocsf, ecs (docs/SIEM.md); feedback and `alerts tail` use the contract topic")
    ocsf_topic: str = Field("extraction.alerts.ocsf", description="OCSF Detection Finding documents, when alert_formats has ocsf")
    ecs_topic: str = Field("extraction.alerts.ecs", description="ECS alert documents, when alert_formats has ecs")
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)

    # worker
    app_id: str = Field("distillguard", description="Faust app id = consumer group and state topic prefix")
    data_dir: Path = Field(Path("./.distillguard-data"), description="Faust data dir (table stores)")
    web_port: int = Field(6066, ge=1, le=65535, description="port of /metrics, /healthz and /readyz")
    web_host: str = "0.0.0.0"

    # state checkpoints and watermarks (see docs/STREAMING.md)
    checkpoint_events: int = Field(2000, ge=1, description="checkpoint a partition's changed tenants after this many events")
    checkpoint_seconds: float = Field(5.0, gt=0, description="... or after this much wall time")
    idle_partition_seconds: float = Field(30.0, gt=0, description="a partition its worker finds caught up and without watermark progress this long is declared idle and stops holding back cluster windows")
    state_chunk_bytes: int = Field(512 * 1024, ge=1024, le=1_000_000, description="largest record a worker writes to a state changelog: the cluster stage's checkpoint is split into records of at most this size (Faust's producer refuses records over 1,000,000 bytes, brokers over message.max.bytes)")

    # alert delivery: notification policy and webhook sink (see docs/DELIVERY.md)
    notifications_topic: str = Field("extraction.notifications", description="what pages humans: alerts after inhibition, repeats")
    notify_repeat_interval_seconds: float = Field(14400.0, ge=0, description="re-send a still-open incident this often (0 = never)")
    notify_group_wait_seconds: float = Field(0.0, ge=0, description="hold a new tenant incident this long so a cluster alert can fold it")
    notify_max_incidents: int = Field(100_000, ge=1, description="open incidents the policy keeps; the least recently touched is evicted")
    webhook_url: str | None = Field(None, pattern=r"^https?://", description="POST every notification here (unset = no webhook)")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the signature header (never logged)")
    webhook_secret_file: Path | None = Field(None, description="read the webhook secret from this file instead")
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="timeout of one POST")
    webhook_max_retries: int = Field(5, ge=0, description="retries after a connection error, timeout, 5xx or 429")
    webhook_backoff_seconds: float = Field(0.5, gt=0, description="first retry delay cap; doubles per retry (full jitter, at most 30 s)")
    webhook_queue_size: int = Field(1000, ge=1, description="notifications waiting for the webhook; more are dropped and counted")

    # limits
    max_event_bytes: int = Field(256 * 1024, ge=256, description="larger events go to the dead-letter topic")
    max_tenants_in_memory: int = Field(100_000, ge=0, description="tenants a worker (or detect run) keeps in memory; "
                                       "the least recently seen are evicted to the state store and restored on return (0 = no cap)")
    table_store: Literal["memory://", "rocksdb://"] = Field(
        "memory://", description="Faust table store of worker state; rocksdb:// keeps evicted tenants on disk under data_dir")

    # logging
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = settings_cls.model_config.get("toml_file") or os.environ.get(f"{ENV_PREFIX}CONFIG")
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{ENV_PREFIX}CONFIG names {path!r}, which is not a readable file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        """Each entry is ``host:port`` (IPv6 as ``[addr]:port``), checked here so no client dies on ``int(port)``."""
        for entry in value.split(","):
            problem = host_port_problem(entry.strip())
            if problem:
                raise ValueError(f"entry {entry.strip()!r} {problem}; want a comma-separated list of host:port "
                                 "(IPv6 as [addr]:port)")
        return value

    @field_validator(*_TOPIC_ROLES, "ocsf_topic", "ecs_topic")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        """A name Kafka refuses would fail deep in a client (a Faust crash, a kafka-python traceback)."""
        problem = topic_name_problem(value)
        if problem:
            raise ValueError(f"is not a Kafka topic name: it {problem}")
        return value

    @field_validator("app_id")
    @classmethod
    def _app_id_name(cls, value: str) -> str:
        """The app id names the consumer group and prefixes the worker's internal topics."""
        if topic_name_problem(value) or len(value) > _APP_ID_MAX:
            raise ValueError(f"must be 1-{_APP_ID_MAX} characters from A-Z, a-z, 0-9, '.', '_', '-' "
                             "(it prefixes the worker's internal topic names)")
        return value

    @model_validator(mode="after")
    def _one_topic_per_role(self) -> Settings:
        """Two roles on one topic break the stream: a dead-letter topic that is the events topic feeds each
        bad event back in without end; alerts on the notifications topic arrive twice."""
        roles = list(_TOPIC_ROLES) + [f"{f}_topic" for f in self.alert_formats.split(",") if f != "contract"]
        seen: dict[str, str] = {}
        for role in roles:
            name = getattr(self, role)
            if name in seen:
                raise ValueError(f"{ENV_PREFIX}{seen[name].upper()} and {ENV_PREFIX}{role.upper()} both name the "
                                 f"topic {name!r}; each role needs a topic of its own")
            seen[name] = role
        return self

    @field_validator("alert_formats")
    @classmethod
    def _known_formats(cls, value: str) -> str:
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - set(ALERT_FORMATS))
        if not names or unknown:
            raise ValueError(f"alert_formats must name some of {', '.join(ALERT_FORMATS)} (got {value!r})")
        return ",".join(n for n in ALERT_FORMATS if n in names)

    def alert_format_topics(self) -> dict[str, str]:
        """``{format: topic}`` of the enabled alert formats, contract first."""
        topics = {"contract": self.alerts_topic, "ocsf": self.ocsf_topic, "ecs": self.ecs_topic}
        return {f: topics[f] for f in self.alert_formats.split(",")}

    def sasl_secret(self) -> str | None:
        """The SASL password, from the setting or from ``sasl_password_file``.

        A file that cannot be read, is not UTF-8 or is empty is a :class:`SettingsError` naming the setting and
        the file (never its content): every Kafka command reports it in one line, exit 2.
        """
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is None:
            return None
        path = self.sasl_password_file
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise file_setting_error("sasl_password_file", path, f"cannot be read ({exc.strerror or exc})") from None
        except UnicodeDecodeError:  # its message would quote a byte of the password
            raise file_setting_error("sasl_password_file", path, "is not UTF-8 text") from None
        if not secret:
            raise file_setting_error("sasl_password_file", path, "is empty")
        return secret

    def webhook_secret_bytes(self) -> bytes | None:
        """The webhook signing key, from the setting or from ``webhook_secret_file``."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value().encode()
        if self.webhook_secret_file is not None:
            return self.webhook_secret_file.read_text().strip().encode()
        return None


class SettingsError(ValueError):
    """A setting (environment, config file or option) that cannot be used; the message is one line for the user."""


_SECRET_FIELDS = frozenset({"sasl_password", "webhook_secret"})
# values that are not secrets as a whole but may carry one (a chat webhook's URL path is its token): an
# error shows only their scheme and host
_URL_FIELDS = frozenset({"webhook_url"})
_NOT_SETTINGS = frozenset({"CONFIG", "NO_KAFKA"})  # DISTILLGUARD_* variables read elsewhere (the TOML path, tests)


def topic_name_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name (checked before any broker call), else None."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "cannot be '.' or '..'"
    if len(name) > TOPIC_NAME_MAX:
        return f"is longer than {TOPIC_NAME_MAX} characters"
    bad = sorted(set(name) - TOPIC_NAME_CHARS)
    if bad:
        return f"has characters Kafka does not allow in a topic name ({''.join(bad)!r}; use letters, digits, '.', '_', '-')"
    return None


def _where(field: str) -> str:
    """How the user spells a setting: its variable and its key in the config file."""
    return f"{ENV_PREFIX}{field.upper()} / {field!r} in the config file"


def file_setting_error(field: str, path: Path, problem: str) -> SettingsError:
    """A setting that names a file the command cannot use: the setting, the file and the problem, in one line.

    Why: the files hold passwords, CAs and keys, read only when a command connects; an unreadable one must
    not end that command in a traceback, and the message must never quote the file's content.
    """
    return SettingsError(f"{_where(field)} = {str(path)!r}: the file {problem}")


def host_port_problem(entry: str) -> str | None:
    """Why ``entry`` is not ``host:port`` (or ``[ipv6]:port``), or ``None`` when it is."""
    if not entry:
        return "is empty"
    match = re.fullmatch(r"\[([0-9A-Fa-f:.%\w-]+)\]:([^:]*)", entry) if entry.startswith("[") else None
    if entry.startswith("[") and match is None:
        return "is not [IPv6 address]:port"
    host, port = match.groups() if match else entry.rpartition(":")[::2]
    if not match and ":" not in entry:
        return "has no port"
    if not host or any(c.isspace() for c in host) or (not match and ":" in host):
        return f"has no valid host ({host!r})" if host else "has no host"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"has port {port!r}, not a number from 1 to 65535"
    return None


def _shown(field: str, value: Any) -> str:
    """The invalid value as an error may show it: nothing of a secret, scheme and host of a URL."""
    if field in _SECRET_FIELDS:
        return ""
    if field in _URL_FIELDS:
        from urllib.parse import urlsplit

        try:
            url = urlsplit(str(value))
            host = url.hostname
        except ValueError:
            return ""
        return f" = '{url.scheme}://{host}/...'" if url.scheme and host else ""
    return f" = {str(value)[:80]!r}"


def _message(field: str, err: Any) -> str:
    """Pydantic's reason, said plainly where its own words would be obscure."""
    if field in _URL_FIELDS and err["type"] == "string_pattern_mismatch":
        return "must be an http:// or https:// URL (the value is not shown: such URLs carry tokens)"
    return str(err["msg"]).removeprefix("Value error, ")


def _describe(exc: ValidationError) -> str:
    """One line per invalid field: its variable and key names, the value (never a secret's) and why."""
    parts = []
    for err in exc.errors():
        if not err["loc"]:  # a rule over several settings: its message names them
            parts.append(_message("", err))
            continue
        field = str(err["loc"][0])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown setting {field!r} in the config file")
            continue
        parts.append(f"{_where(field)}{_shown(field, err.get('input'))}: {_message(field, err)}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``config`` names a TOML file (same keys as the env vars, lower-case, no prefix).

    Raises :class:`SettingsError` (one readable line) for a bad value, an unknown key in the file, or a
    config file that is missing or not TOML, so every command can report it without a traceback.
    """
    try:
        if config is None:
            return Settings(**overrides)
        with_file = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": str(config)}})
        return with_file(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"the config file is not valid TOML: {exc}") from None
    except OSError as exc:  # a missing or unreadable config file
        raise SettingsError(str(exc)) from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``DISTILLGUARD_*`` variables that name no setting (a typo would otherwise be ignored silently)."""
    env = os.environ if environ is None else environ
    known = {name.upper() for name in Settings.model_fields} | _NOT_SETTINGS
    return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper()[len(ENV_PREFIX):] not in known)

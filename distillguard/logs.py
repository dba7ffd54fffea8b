"""structlog, configured once: JSON lines in production, readable console output on a terminal.

The processor chain enforces the privacy rules for every log line, whoever
logs it: a ``prompt_text`` key is dropped, secret-looking keys are masked, and
attacker-controlled strings are escaped (no raw newlines or control
characters) so a tenant id cannot forge log lines.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token_value|sasl_password|api_key$|credential", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DROP_KEYS = frozenset({"prompt_text"})


def _escape(value: Any) -> Any:
    if isinstance(value, str) and _CONTROL.search(value):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def scrub(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Processor: drop prompt text, mask secrets, escape control characters."""
    for key in list(event_dict):
        if key in _DROP_KEYS:
            del event_dict[key]
        elif _SECRET_KEYS.search(key) and event_dict[key] is not None:
            event_dict[key] = "***"
        else:
            event_dict[key] = _escape(event_dict[key])
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub,
    ]


def build_formatter(fmt: str = "auto", stream: TextIO | None = None) -> logging.Formatter:
    """A stdlib formatter that renders every record (ours, Faust's, aiokafka's) through the chain.

    Also usable from ``logging.config.dictConfig`` (``{"()": "distillguard.logs.build_formatter"}``),
    which is how the Faust worker installs it.
    """
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


def _configure_structlog() -> None:
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (Faust, aiokafka) to share one format."""
    _configure_structlog()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(build_formatter(fmt, stream))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python narrates every connection at INFO; its warnings and errors still come through
    logging.getLogger("kafka").setLevel(level if level == "DEBUG" else "WARNING")


def logging_dict_config(fmt: str = "auto", level: str = "INFO") -> dict[str, Any]:
    """The same set-up as a dictConfig, for ``faust.Worker(logging_config=...)``."""
    _configure_structlog()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"distillguard": {"()": "distillguard.logs.build_formatter", "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "distillguard", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {"kafka": {"level": level if level == "DEBUG" else "WARNING"}},
    }


def _orjson_dumps(obj: Any, **_kw: Any) -> str:
    import orjson

    return orjson.dumps(obj, default=str).decode()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; use keyword arguments for fields, never f-strings with user data."""
    return structlog.get_logger(name)

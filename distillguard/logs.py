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


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (Faust, aiokafka) to share one format."""
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _orjson_dumps(obj: Any, **_kw: Any) -> str:
    import orjson

    return orjson.dumps(obj, default=str).decode()


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; use keyword arguments for fields, never f-strings with user data."""
    return structlog.get_logger(name)

"""Build dead-letter records (``dead_letter.schema.json``) for rejected input."""

from __future__ import annotations

import base64
from typing import Any

from schemas.codec import strip_prompt


def dead_letter_record(raw: bytes, reason: str, max_bytes: int, continues_prompt: bool = False,
                       **source: Any) -> dict[str, Any]:
    """The record for one rejected input: its bytes (prompt removed, truncated), the reason and its source.

    ``source`` carries ``source_topic``/``source_partition``/``source_offset`` on
    Kafka or ``source_file``/``line`` in embedded mode. ``continues_prompt``: the input may be the rest of a
    prompt text value split off an earlier line (``schemas.codec.ends_inside_prompt``), so ``raw`` is only a
    redaction marker.
    """
    if continues_prompt:
        body = b"[redacted: %d bytes that may continue a prompt text value of an earlier line]" % len(raw)
    else:
        body = strip_prompt(raw)
    truncated = len(body) > max_bytes
    if truncated:
        body = body[:max_bytes]
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode("ascii"), "base64"
    record: dict[str, Any] = {"reason": reason, "raw": text, "raw_encoding": encoding, "truncated": truncated}
    record.update({k: v for k, v in source.items() if v is not None})
    return record

"""Event, alert, feedback and dead-letter schemas (JSON Schema files) and their codecs.

The ``*.schema.json`` files in this folder are the single source of truth for the
contract in ``shared/CONTRACT.md``; the codec compiles its checks from them.
"""

from schemas.codec import DecodeError, EventCodec, load_schema
from schemas.event import Event

__all__ = ["DecodeError", "Event", "EventCodec", "load_schema"]

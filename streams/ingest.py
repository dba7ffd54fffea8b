"""The ingest agent: decode and validate each raw event; invalid ones go to the dead-letter topic."""

from __future__ import annotations

import faust
import orjson

from distillguard.logs import get_logger
from distillguard.settings import Settings
from schemas import DecodeError, EventCodec
from schemas.dead_letter import dead_letter_record
from streams import metrics

log = get_logger(__name__)


def make_codec(settings: Settings) -> EventCodec:
    """The codec used on every path, with prompt-text feature extraction when the engine provides it."""
    try:
        from detectors.features import prompt_features
    except ImportError:  # the detection stage is not installed in this build
        prompt_features = None  # type: ignore[assignment]
    return EventCodec(max_bytes=settings.max_event_bytes, prompt_hook=prompt_features)


def register_ingest(app: faust.App, settings: Settings) -> None:
    """Attach the ingest agent on the events topic (key = tenant_id) to ``app``."""
    codec = make_codec(settings)
    events_topic = app.topic(settings.events_topic, partitions=settings.partitions)
    dlq_topic = app.topic(settings.dlq_topic, partitions=settings.partitions)
    valid = metrics.EVENTS.labels(result="valid")
    invalid = metrics.EVENTS.labels(result="invalid")

    @app.agent(events_topic, name="distillguard.ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                codec.decode(raw)
            except DecodeError as exc:
                record = dead_letter_record(
                    raw,
                    exc.reason,
                    settings.max_event_bytes,
                    source_topic=msg.topic,
                    source_partition=msg.partition,
                    source_offset=msg.offset,
                )
                await dlq_topic.send(key=event.key, value=orjson.dumps(record))
                invalid.inc()
                metrics.DLQ.labels(reason=metrics.reason_label(exc.field, exc.reason)).inc()
                log.debug("dead_letter", reason=exc.reason, partition=msg.partition, offset=msg.offset)
                continue
            valid.inc()

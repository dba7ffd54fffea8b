"""Ingest: the codec every path (worker, detect, replay) decodes events with."""

from __future__ import annotations

from distillguard.settings import Settings
from schemas import EventCodec


def make_codec(settings: Settings) -> EventCodec:
    """The codec with prompt-text feature extraction: the text becomes features and is dropped."""
    from detectors.features import prompt_features

    return EventCodec(max_bytes=settings.max_event_bytes, prompt_hook=prompt_features)

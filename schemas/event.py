"""The typed form of a validated usage event.

A decoded event is a plain ``dict`` (fast to build, cheap to keep) typed with a
``TypedDict``. It holds only contract fields that were present and non-null
(normalised as the schema's ``x-`` keywords say: a string over 128 characters is
a 25-character hash stand-in, a negative count is absent, hex is lower-case),
plus ``ts``: the event time as epoch seconds, parsed once by the codec so that
no later stage parses timestamps again. ``prompt_text`` is never present: the
codec turns it into derived features and drops it.
"""

from __future__ import annotations

from typing import TypedDict


class _Required(TypedDict):
    event_id: str
    timestamp: str
    tenant_id: str
    account_id: str
    model: str
    input_tokens: int
    output_tokens: int
    ts: float  # derived: event time in epoch seconds


class Event(_Required, total=False):
    schema_version: int
    api_key_id: str
    endpoint: str
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    logprobs: bool
    top_logprobs: int
    logit_bias_size: int
    tools_count: int
    reasoning_tokens: int
    cached_input_tokens: int
    status_code: int
    stop_reason: str
    latency_ms: int
    session_id: str
    turn_index: int
    prompt_fingerprint: str
    prompt_template_id: str
    prompt_chars: int
    prompt_language: str
    prompt_topic: str
    cot_elicitation: bool
    client_ip_prefix: str
    asn: int
    country: str
    user_agent: str
    payment_fingerprint: str

"""The codec rejects only what the contract rejects, and bounds the rest after validation.

A schema stricter than the contract is an evasion channel: an attacker who controls a field (his user agent,
say) could make every one of his events go to the dead-letter topic, out of the detector's sight. Values the
contract allows are accepted on both decode paths; over-long strings, negative counts and upper-case hex are
normalised (schemas/usage_event.schema.json ``x-`` keywords, schemas/codec.py docstring).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import pytest

from detectors import Engine
from detectors import synthetic as S
from detectors.features import prompt_features
from schemas import DecodeError, EventCodec, load_schema
from tests.test_codec_conformance import REFERENCE, valid_event

CODEC = EventCodec()
PROPS = load_schema("usage_event")["properties"]
COUNTS = ["max_tokens", "top_logprobs", "logit_bias_size", "tools_count", "reasoning_tokens", "cached_input_tokens",
          "latency_ms", "n", "turn_index", "prompt_chars", "asn", "status_code"]
OPTIONAL_STRINGS = ["api_key_id", "endpoint", "stop_reason", "session_id", "prompt_template_id", "prompt_language",
                    "prompt_topic", "client_ip_prefix", "country", "user_agent", "payment_fingerprint"]


def base(**changes: Any) -> dict[str, Any]:
    ev = {"event_id": "e-1", "timestamp": "2026-06-25T11:32:00.123Z", "tenant_id": "t", "account_id": "a",
          "model": "model-a", "input_tokens": 10, "output_tokens": 20}
    ev.update(changes)
    return ev


def both_paths(ev: dict[str, Any]) -> dict[str, Any]:
    """Decode ``ev`` from bytes (msgspec fast path first) and as a parsed object (the checker): same result."""
    from_bytes = CODEC.decode(orjson.dumps(ev))
    from_obj = CODEC.decode_obj(orjson.loads(orjson.dumps(ev)))
    assert from_bytes == from_obj and list(from_bytes) == list(from_obj)
    assert REFERENCE.is_valid(ev), "jsonschema (the reference) accepts it too"
    return from_bytes


def stand_in(value: str) -> str:
    return "~" + hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


@pytest.mark.parametrize("changes", [
    {"user_agent": "u" * 600}, {"model": ""}, {"model": "m" * 129}, {"endpoint": "e" * 65}, {"stop_reason": "s" * 65},
    {"session_id": "s" * 129}, {"api_key_id": "k" * 129}, {"country": "c" * 9}, {"prompt_language": "l" * 17},
    {"asn": 4294967295}, {"output_tokens": 2**31}, {"input_tokens": 2**63 + 5}, {"max_tokens": 2**64 - 1},
    {"latency_ms": -1}, {"asn": -(2**63)}, {"temperature": -0.5}, {"top_p": 1.5}, {"status_code": 1000},
    {"prompt_fingerprint": "0123456789ABCDEF"}, {"timestamp": "2026-06-25t11:32:00.123z"},
    {"timestamp": "2016-12-31T23:59:60Z"}, {"timestamp": "2026-06-25T11:32:60.5+02:00"},
], ids=lambda c: next(iter(c)) + "=" + repr(next(iter(c.values())))[:24])
def test_values_the_contract_allows_are_accepted(changes):
    both_paths(base(**changes))


@pytest.mark.parametrize(("changes", "reason"), [
    ({"event_id": ""}, "event_id: shorter than 1"), ({"event_id": "e" * 129}, "event_id: longer than 128"),
    ({"tenant_id": "t" * 129}, "tenant_id: longer than 128"), ({"account_id": ""}, "account_id: shorter than 1"),
    ({"input_tokens": -1}, "input_tokens: must be >= 0"), ({"output_tokens": -5}, "output_tokens: must be >= 0"),
    ({"input_tokens": 1.5}, "input_tokens: expected integer"), ({"output_tokens": "20"}, "output_tokens: expected integer"),
    ({"model": 7}, "model: expected string"), ({"user_agent": ["x"]}, "user_agent: expected string"),
    ({"asn": "64500"}, "asn: expected integer"), ({"temperature": "hot"}, "temperature: expected number"),
    ({"latency_ms": True}, "latency_ms: expected integer"), ({"schema_version": 2}, "schema_version: must be one of"),
    ({"schema_version": "1"}, "schema_version: expected integer"), ({"asn": 1e30}, "asn: must be <= "),
    ({"prompt_fingerprint": "0123456789abcdeg"}, "prompt_fingerprint: does not match"),
    ({"timestamp": "2026-06-25T11:32:61Z"}, "timestamp: does not match"),
    ({"timestamp": "2026-02-30T23:59:60Z"}, "timestamp: not a valid date-time"),
])
def test_contract_limits_and_wrong_types_are_still_rejected(changes, reason):
    ev = base(**changes)
    assert not REFERENCE.is_valid(ev)
    for decode in (lambda: CODEC.decode(orjson.dumps(ev)), lambda: CODEC.decode_obj(ev)):
        with pytest.raises(DecodeError) as info:
            decode()
        assert info.value.reason.startswith(reason), info.value.reason


def test_integers_beyond_64_bits_stay_rejected():
    for field in ("input_tokens", "asn"):
        with pytest.raises(DecodeError):
            CODEC.decode(orjson.dumps(base())[:-1] + b',"' + field.encode() + b'":18446744073709551616}')


@pytest.mark.parametrize("field", ["model", *OPTIONAL_STRINGS])
def test_long_strings_get_a_stable_fixed_length_stand_in(field):
    at_limit, long_a, long_b = "x" * 128, "a" * 129 + "é", "a" * 129 + "è"
    assert both_paths(base(**{field: at_limit}))[field] == at_limit, "up to 128 characters are kept as they are"
    first, again = both_paths(base(**{field: long_a})), both_paths(base(event_id="e-2", **{field: long_a}))
    assert first[field] == again[field] == stand_in(long_a) and len(first[field]) == 25
    assert both_paths(base(**{field: long_b}))[field] != first[field]


def test_same_long_user_agent_still_shares_a_cluster_key():
    """Two events with the same 600-character user agent keep one key (the cluster stage groups tenants by it)."""
    ua = "Mozilla/5.0 " + "A" * 600
    keys = {both_paths(base(event_id=f"e-{i}", tenant_id=f"t{i}", user_agent=ua))["user_agent"] for i in range(3)}
    assert keys == {stand_in(ua)}


@pytest.mark.parametrize("field", COUNTS)
def test_negative_counts_are_dropped_as_absent(field):
    out = both_paths(base(**{field: -3}))
    assert field not in out
    assert both_paths(base(**{field: 0}))[field] == 0
    assert both_paths(base(**{field: -2.0}, session_id="s"))["session_id"] == "s", "the rest of the event is kept"


def test_a_dropped_negative_prompt_chars_is_derived_from_the_prompt_again():
    codec = EventCodec(prompt_hook=prompt_features)
    out = codec.decode(orjson.dumps(base(prompt_chars=-1, prompt_text="hello there")))
    assert out["prompt_chars"] == len("hello there")


def test_upper_case_fingerprint_is_lower_cased():
    assert both_paths(base(prompt_fingerprint="0123456789ABCDEF"))["prompt_fingerprint"] == "0123456789abcdef"
    assert both_paths(base(prompt_fingerprint="0123456789AbCdEf"))["prompt_fingerprint"] == "0123456789abcdef"


def test_lower_case_t_z_and_leap_seconds():
    plain = both_paths(base(timestamp="2016-12-31T23:59:59Z"))["ts"]
    assert both_paths(base(timestamp="2016-12-31t23:59:59z"))["ts"] == plain
    leap = both_paths(base(timestamp="2016-12-31T23:59:60Z"))
    assert leap["timestamp"] == "2016-12-31T23:59:60Z", "the string is kept as sent"
    assert leap["ts"] == pytest.approx(plain + 0.999999, abs=1e-6), "the last instant of the minute"
    assert both_paths(base(timestamp="2016-12-31T23:59:60.75Z"))["ts"] == leap["ts"]
    assert both_paths(base(timestamp="2017-01-01T00:00:00Z"))["ts"] > leap["ts"]
    assert both_paths(base(timestamp="2016-12-31t15:59:60.5-08:00"))["ts"] == leap["ts"], "zones other than Z"


def test_common_events_stay_on_the_fast_path(monkeypatch):
    """Events that need no normalisation never reach the (slower) checker."""
    codec = EventCodec()
    monkeypatch.setattr(codec, "decode_obj", lambda obj: pytest.fail("took the checker"))
    for i in range(200):
        ev = valid_event(random.Random(i))
        if REFERENCE.is_valid(ev) and not any(type(v) is float and PROPS[k]["type"] in ("integer", ["integer", "null"])
                                              for k, v in ev.items()):
            codec.decode(orjson.dumps(ev))


def test_normalisation_keywords_are_checked_when_the_schema_loads():
    from schemas.codec import _compile_decoder

    for spec in ({"type": ["string", "null"], "x-negative": "absent"}, {"type": ["integer", "null"], "x-bound-length": 128},
                 {"type": ["string", "null"], "x-bound-length": 8}, {"type": ["string", "null"], "x-case": "upper"}):
        with pytest.raises(ValueError, match="x-"):
            _compile_decoder({"required": [], "properties": {"x": spec}})


def test_extraction_tenant_with_600_char_user_agent_is_still_detected():
    """End to end: events from bytes through the codec into ``detectors.Engine``; a long user agent used to
    dead-letter every event of the tenant, so the attack was never seen."""
    ua = "python-requests/2.31 " + "x" * 579
    assert len(ua) == 600
    raw = [orjson.dumps({k: v for k, v in ev.items() if k != "ts"} | ({"user_agent": ua} if ev["tenant_id"] == "x" else {}))
           for ev in S.merge(S.extraction("x", hours=2), S.chat("c", hours=4))]
    codec = EventCodec(prompt_hook=prompt_features)
    events = [codec.decode(line) for line in raw]  # none is rejected
    assert {ev["user_agent"] for ev in events if ev["tenant_id"] == "x"} == {stand_in(ua)}
    eng = Engine()
    alerts = eng.process_many(events) + eng.finish()
    opened = [a for a in alerts if a["kind"] == "tenant" and a["tenant_id"] == "x" and a["status"] == "open"]
    assert opened and opened[0]["severity"] in ("medium", "high", "critical")
    assert not [a for a in alerts if a["kind"] == "tenant" and a["tenant_id"] == "c"]


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "reasoning_tokens", "cached_input_tokens"])
def test_token_counts_beyond_2_32_are_clamped_so_state_stays_serialisable(field):
    """The contract allows any int >= 0, but the detector sums token counts per window and snapshots hold
    64-bit integers: two events of 2^63 tokens made the tenant's snapshot (so the worker's checkpoint) raise."""
    assert both_paths(base(**{field: 2**64 - 1}))[field] == 2**32 - 1
    assert both_paths(base(**{field: 2**32 - 1}))[field] == 2**32 - 1
    engine = Engine()
    for i in range(3):
        engine.process(CODEC.decode(orjson.dumps(base(**{field: 2**63, "event_id": f"big-{i}"}))))
    tid = base()["tenant_id"]
    assert engine.tenants.snapshot(tid)[:3] == b"DGT"

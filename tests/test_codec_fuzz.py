"""Property-based fuzzing of the codec and the dead-letter path with hostile input.

For any input the codec either returns an event that the JSON Schema (jsonschema, the reference)
accepts, with a finite event time, or raises :class:`schemas.DecodeError` with a reason -- never any
other exception; and the dead-letter record of every rejected input is itself valid and carries no
prompt text. This is what keeps a worker alive on poison input.
"""

from __future__ import annotations

import json
import math
import random

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from detectors.features import prompt_features
from schemas import DecodeError, EventCodec, load_schema
from schemas.codec import bound_string
from schemas.dead_letter import dead_letter_record
from tests.test_codec_conformance import REFERENCE, valid_event

SCHEMA = load_schema("usage_event")
EVENT_REF = REFERENCE  # the schema, with date-time formats checked (leap seconds included)
DLQ_REF = Draft202012Validator(load_schema("dead_letter"))
MAX_BYTES = 4096
CODEC = EventCodec(max_bytes=MAX_BYTES, prompt_hook=prompt_features)  # as the worker builds it
PROPS = sorted(SCHEMA["properties"])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(raw: bytes | str) -> dict | None:
    """The codec's contract on one input; returns the event or None when rejected."""
    try:
        ev = CODEC.decode(raw)
    except DecodeError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
        record = dead_letter_record(data, exc.reason, MAX_BYTES, source_topic="t", source_partition=0,
                                    source_offset=1)
        DLQ_REF.validate(record)
        orjson.dumps(record)
        return None
    assert type(ev) is dict and "prompt_text" not in ev
    assert type(ev["ts"]) is float and math.isfinite(ev["ts"])
    EVENT_REF.validate({k: v for k, v in ev.items() if k != "ts"})
    orjson.dumps(ev)  # a decoded event can always be serialised again
    return ev


def dumps(value: object) -> bytes:
    """JSON bytes of any generated value (big integers, NaN and Infinity tokens included)."""
    return json.dumps(value, allow_nan=True).encode()


def event_bytes(seed: int, **changes: object) -> bytes:
    ev = valid_event(random.Random(seed))
    ev.update(changes)
    return dumps(ev)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


@FUZZ
@given(st.binary(max_size=600))
@example(b'{"event_id":"\xff"}')
@example(b"\xef\xbb\xbf{}")
@example(b"[" * 5000)
def test_arbitrary_bytes(raw):
    check(raw)


@FUZZ
@given(json_value)
def test_arbitrary_json_including_nan_and_infinity(value):
    check(dumps(value))  # NaN/Infinity tokens are not JSON: rejected


@FUZZ
@given(st.dictionaries(st.sampled_from(PROPS + ["zzz"]), json_value, max_size=12), st.integers(0, 10**6))
def test_schema_fields_with_arbitrary_values(fields, seed):
    ev = valid_event(random.Random(seed))
    ev.update(fields)
    check(dumps(ev))


@FUZZ
@given(st.integers(0, 10**6), st.lists(st.tuples(st.integers(0, 10**4), st.sampled_from("xdif"), st.binary(min_size=1, max_size=3)),
                                        min_size=1, max_size=6))
def test_byte_mutations_of_valid_events(seed, edits):
    raw = bytearray(event_bytes(seed))
    for pos, op, chunk in edits:
        i = pos % (len(raw) + 1)
        if op == "x" and i < len(raw):
            raw[i] ^= chunk[0]
        elif op == "d":
            del raw[i:i + len(chunk)]
        elif op == "i":
            raw[i:i] = chunk
        else:
            raw[i:i] = raw[i:i + 40]  # duplicate a slice (repeated keys, broken structure)
    check(bytes(raw))


@FUZZ
@given(st.integers(0, 10**6), st.sampled_from(PROPS), json_value)
@example(0, "cached_input_tokens", 4294967296.0)
def test_duplicate_keys_last_one_wins_or_rejected(seed, field, value):
    raw = event_bytes(seed)
    ev = check(raw[:-1] + b"," + dumps(field) + b":" + dumps(value) + b"}")
    if ev is not None and field in ev and field not in ("prompt_fingerprint", "prompt_chars", "prompt_template_id",
                                                       "cot_elicitation", "input_tokens", "output_tokens"):
        clamp = SCHEMA["properties"][field].get("x-clamp")  # token counts the detector sums are read as at most this
        if clamp is not None and isinstance(value, (int, float)) and value > clamp:
            value = clamp
        assert ev[field] == value or (isinstance(value, float) and ev[field] == int(value))


@FUZZ
@given(st.integers(0, 10**6), st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200),
       st.sampled_from(["event_id", "tenant_id", "account_id", "model", "session_id", "user_agent"]))
@example(0, "ua\n" * 60, "user_agent")
def test_control_characters_and_newlines_in_ids(seed, text, field):
    ev = check(event_bytes(seed, **{field: text}))
    if ev is not None:
        bound = SCHEMA["properties"][field].get("x-bound-length")  # longer optional strings get a hashed stand-in
        want = bound_string(text) if bound is not None and len(text) > bound else text
        assert ev[field] == want  # kept verbatim (renderers escape them, see distillguard.render.safe)


@FUZZ
@given(st.integers(0, 10**6), st.from_regex(SCHEMA["properties"]["timestamp"]["pattern"]))
@example(0, "9999-12-31T23:59:59.999999999-23:59")
@example(0, "0001-01-01T00:00:00+23:59")
@example(0, "0000-01-01T00:00:00Z")
@example(0, "٢٠٢٦-01-01T00:00:00Z")
def test_any_timestamp_matching_the_pattern(seed, stamp):
    ev = check(event_bytes(seed, timestamp=stamp))
    if ev is not None:
        assert -62135596800 - 86400 <= ev["ts"] <= 253402300800 + 86400


@FUZZ
@given(st.integers(0, 10**6), st.one_of(st.integers(), st.floats(), st.text(max_size=5)),
       st.sampled_from(["input_tokens", "output_tokens", "temperature", "top_p", "max_tokens", "asn", "status_code"]))
@example(0, 10**400, "temperature")
@example(0, -(10**30), "input_tokens")
def test_huge_and_odd_numbers(seed, value, field):
    body = event_bytes(seed)[:-1] + b',"' + field.encode() + b'":' + dumps(value) + b"}"
    check(body)


@FUZZ
@given(st.text(max_size=300), st.integers(0, 10**6))
def test_prompt_text_is_turned_into_features_or_rejected_and_never_leaks(text, seed):
    raw = event_bytes(seed, prompt_text="SECRET:" + text, prompt_fingerprint=None, prompt_chars=None,
                      prompt_template_id=None, cot_elicitation=None)
    ev = check(raw)
    if ev is not None:
        assert len(ev["prompt_fingerprint"]) == 16 and "SECRET:" not in orjson.dumps(ev).decode()
    record = dead_letter_record(raw, "test", MAX_BYTES)
    assert "SECRET:" not in record["raw"]


def test_huge_strings_are_rejected_as_oversized():
    raw = event_bytes(1, user_agent="u" * 10**6)
    assert check(raw) is None
    try:
        CODEC.decode(raw)
    except DecodeError as exc:
        assert exc.reason.startswith("oversized")


def test_str_input_with_lone_surrogates_is_a_decode_error():
    assert check('{"event_id": "caf\udcff"}') is None

"""The codec accepts and rejects exactly what the JSON Schema file does (jsonschema is the reference)."""

from __future__ import annotations

import random
import string

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from rfc3339_validator import validate_rfc3339

from schemas import DecodeError, EventCodec, load_schema

SCHEMA = load_schema("usage_event")


def _rfc3339_date_time(instance: object) -> bool:
    """jsonschema's ``date-time`` check (rfc3339-validator on the upper-cased value) plus leap seconds.

    RFC 3339 and the JSON Schema spec allow ``:60``; rfc3339-validator says it does not support leap seconds,
    so the reference reads ``HH:MM:60`` as ``HH:MM:59`` before its check (the codec accepts ``:60`` on any
    minute, as it keeps no table of leap seconds).
    """
    if not isinstance(instance, str):
        return True
    value = instance.upper()
    if value[16:19] == ":60":
        value = value[:17] + "59" + value[19:]
    return validate_rfc3339(value)


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_rfc3339_date_time)
REFERENCE = Draft202012Validator(SCHEMA, format_checker=FORMATS)
CODEC = EventCodec(max_bytes=10**9)
PROPS = SCHEMA["properties"]


def accepts(obj: object) -> bool:
    try:
        CODEC.decode_obj(obj)
        return True
    except DecodeError:
        return False


def valid_value(name: str, rng: random.Random):
    """A value the schema accepts for property ``name``, derived from the schema itself."""
    spec = PROPS[name]
    kind = next(t for t in (spec["type"] if isinstance(spec["type"], list) else [spec["type"]]) if t != "null")
    if name == "timestamp":
        frac = rng.choice(["", ".1", ".123", ".123456789"])
        zone = rng.choice(["Z", "+00:00", "-07:30", "+14:00"])
        return f"20{rng.randint(10, 40)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{frac}{zone}"
    if name == "prompt_fingerprint":
        return "".join(rng.choice("0123456789abcdef") for _ in range(16))
    if "enum" in spec:
        return rng.choice([e for e in spec["enum"] if e is not None])
    if kind == "string":
        lo, hi = spec.get("minLength", 0), min(spec.get("maxLength", 40), 40)
        return "".join(rng.choice(string.ascii_letters + "-_/ é中") for _ in range(rng.randint(max(lo, 1), max(hi, 1))))
    if kind == "integer":  # gateway-shaped: counts are >= 0 (negative ones, which are dropped, are in ODD_VALUES)
        lo, hi = max(spec.get("minimum", 0), 0), min(spec.get("maximum", 10**6), 10**6)
        value = rng.randint(lo, hi)
        return float(value) if rng.random() < 0.1 else value
    if kind == "number":
        return rng.choice([0, 0.0, 0.7, 1, 2.5])
    if kind == "boolean":
        return rng.choice([True, False])
    raise AssertionError(kind)


def valid_event(rng: random.Random) -> dict:
    ev = {name: valid_value(name, rng) for name in SCHEMA["required"]}
    for name in PROPS:
        if name not in ev and rng.random() < 0.4:
            ev[name] = None if rng.random() < 0.1 else valid_value(name, rng)
    if rng.random() < 0.3:
        ev["some_unknown_field"] = {"x": [1, "y", None]}
    return ev


# values invalid for some fields, or valid but needing normalisation (long strings, negative counts, upper-case hex,
# lower-case t/z, leap seconds, integers beyond 32 bits)
BAD_VALUES = [None, "", "x" * 600, "y" * 128, "y" * 129, -1, -0.5, 1.5, 2**40, 2**63, 2**64 - 1, -(2**63), 1e300, -1e300,
              True, False, [], {}, "12", 3, 0.0,
              "2026-06-25T11:32:00Z\n", "2026-06-25t11:32:00z", "2026-06-25 11:32:00Z", "2026-13-01T00:00:00Z",
              "2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-06-25T24:00:00Z", "2026-06-25T11:32:00",
              "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0123456789ABCDEF",
              "0123456789abcdef", "0123456789abcdeg", "0123456789AbCdEf\n", "2016-12-31T23:59:60Z",
              "2026-06-25t11:32:60.25+05:30", "2026-06-25T11:32:61Z", "2026-02-30T23:59:60Z", "9999-12-31T23:59:60Z"]


def corpus(n: int, seed: int) -> list:
    rng = random.Random(seed)
    out: list = []
    for _ in range(n):
        ev = valid_event(rng)
        r = rng.random()
        if r < 0.25:
            out.append(ev)
            continue
        mutated = dict(ev)
        if r < 0.4:
            mutated.pop(rng.choice(SCHEMA["required"]))
        else:
            for _ in range(rng.randint(1, 2)):
                mutated[rng.choice(list(PROPS))] = rng.choice(BAD_VALUES)
        out.append(mutated)
    out += [[], "event", 1, None, [valid_event(rng)]]
    return out


def test_codec_agrees_with_jsonschema_on_generated_corpus():
    cases = corpus(6000, seed=20260625)
    verdicts = [(REFERENCE.is_valid(obj), accepts(obj)) for obj in cases]
    disagreements = [(obj, ref, ours) for obj, (ref, ours) in zip(cases, verdicts) if ref != ours]
    assert not disagreements, disagreements[:5]
    accepted = sum(ref for ref, _ in verdicts)
    assert 1000 < accepted < len(cases) - 1000, "the corpus exercises both sides"


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(sorted(PROPS)), value=json_scalars, seed=st.integers(0, 10**6))
def test_codec_agrees_with_jsonschema_for_any_single_field_value(field, value, seed):
    ev = valid_event(random.Random(seed))
    ev[field] = value
    assert REFERENCE.is_valid(ev) == accepts(ev)


def test_decoded_event_drops_unknown_and_null_fields_and_normalises():
    ev = valid_event(random.Random(1)) | {"input_tokens": 12.0, "session_id": None, "zzz": 1,
                                          "timestamp": "2026-06-25T11:32:00.5+02:00"}
    out = CODEC.decode(orjson.dumps(ev))
    assert "zzz" not in out and "session_id" not in out
    assert out["input_tokens"] == 12 and type(out["input_tokens"]) is int
    assert out["ts"] == pytest.approx(1782379920.5)


def test_prompt_text_goes_to_the_hook_and_is_dropped():
    seen = []

    def hook(text: str) -> dict:
        seen.append(text)
        return {"prompt_chars": len(text), "cot_elicitation": True, "prompt_template_id": "derived"}

    codec = EventCodec(prompt_hook=hook)
    ev = valid_event(random.Random(2)) | {"prompt_text": "secret words", "prompt_template_id": "from-gateway"}
    ev.pop("prompt_chars", None), ev.pop("cot_elicitation", None)
    out = codec.decode(orjson.dumps(ev))
    assert seen == ["secret words"]
    assert "prompt_text" not in out and "secret words" not in orjson.dumps(out).decode()
    assert out["prompt_template_id"] == "from-gateway", "gateway-sent fields win over derived ones"
    assert out["prompt_chars"] == 12 and out["cot_elicitation"] is True


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "invalid JSON"),
        (b"[1, 2]", "not a JSON object: got array"),
        (b'{"event_id": "a"}', "timestamp: required field missing"),
        (b"x" * 300, "oversized: 300 bytes > limit 256"),
    ],
)
def test_errors_name_the_problem(raw, reason):
    with pytest.raises(DecodeError) as info:
        EventCodec(max_bytes=256).decode(raw)
    assert info.value.reason.startswith(reason)


def test_invalid_utf8_is_rejected_in_any_field_known_or_not():
    """msgspec skips unknown fields without reading them; the codec still refuses bytes that are not UTF-8
    there (JSON text is UTF-8 throughout), and accepts valid non-ASCII text in an unknown field."""
    ev = orjson.dumps(valid_event(random.Random(3)))
    codec = EventCodec()
    for field in (b'"x_unknown"', b'"account_id"'):
        with pytest.raises(DecodeError) as info:
            codec.decode(ev[:-1] + b"," + field + b':"\xff\xfe"}')
        assert info.value.reason.startswith("invalid JSON")
    assert "x_unknown" not in codec.decode(ev[:-1] + ',"x_unknown":"caf\u00e9 \u2014 ok"}'.encode())
    assert codec.decode(memoryview(ev)) == codec.decode(ev)


def test_schema_with_unsupported_keyword_is_refused():
    from schemas.codec import _compile_decoder

    bad = {"required": [], "properties": {"x": {"type": ["string", "null"], "format": "email"}}}
    with pytest.raises(ValueError, match="format"):
        _compile_decoder(bad)


def _slow(obj: object):
    """The compiled checker alone (the path that words dead-letter reasons)."""
    try:
        return CODEC.decode_obj(orjson.loads(orjson.dumps(obj)))
    except DecodeError as exc:
        return ("rejected", exc.reason)


def test_fast_byte_path_returns_exactly_what_the_checker_returns():
    """``decode(bytes)`` tries msgspec first; on every corpus case it must equal the checker's verdict and output."""
    for obj in corpus(3000, seed=7) + [valid_event(random.Random(i)) for i in range(500)]:
        raw = orjson.dumps(obj)
        try:
            got = CODEC.decode(raw)
        except DecodeError as exc:
            got = ("rejected", exc.reason)
        want = _slow(obj)
        assert got == want, (obj, got, want)
        if isinstance(got, dict):
            assert list(got) == list(want), "same key order (serialised alerts and snapshots stay byte-identical)"
            assert all(type(got[k]) is type(want[k]) for k in got), (got, want)
    # valid gateway-shaped events (integers as integers, nothing to normalise) never need the checker
    fast = 0
    for i in range(300):
        ev = {k: int(v) if type(v) is float and PROPS[k]["type"] in ("integer", ["integer", "null"]) else v
              for k, v in valid_event(random.Random(i)).items()}
        if isinstance(_slow(ev), dict):
            CODEC._fast(orjson.dumps(ev))
            fast += 1
    assert fast > 100


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(PROPS)), value=json_scalars, seed=st.integers(0, 10**6))
def test_fast_byte_path_agrees_with_checker_for_any_single_field_value(field, value, seed):
    ev = valid_event(random.Random(seed))
    ev[field] = value
    try:
        got = CODEC.decode(orjson.dumps(ev))
    except DecodeError as exc:
        got = ("rejected", exc.reason)
    assert got == _slow(ev)

"""Dead-letter records never carry prompt text: escapes at a line break, UTF-16/UTF-32 input, split lines."""

from __future__ import annotations

import base64

import jsonschema
import orjson
import pytest

from schemas import load_schema
from schemas.codec import ends_inside_prompt, strip_prompt
from schemas.dead_letter import dead_letter_record

DLQ = load_schema("dead_letter")


def raw_of(record: dict) -> bytes:
    return base64.b64decode(record["raw"]) if record["raw_encoding"] == "base64" else record["raw"].encode()


def test_backslash_before_a_raw_newline_does_not_end_the_redaction():
    raw = b'{"event_id":"k1","prompt_text":"first \\' + b"\n" + b'SECRET rest","x":1}'
    assert b"SECRET" not in strip_prompt(raw)
    record = dead_letter_record(raw, "invalid JSON", 10_000, source_file="f", line=1)
    jsonschema.validate(record, DLQ)
    assert b"SECRET" not in raw_of(record) and b"rest" not in raw_of(record)
    assert '"event_id":"k1"' in record["raw"], "what is not prompt text is kept"


WIDE = ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
@pytest.mark.parametrize("encoding", WIDE)
def test_utf16_and_utf32_input_is_redacted(encoding, bom):
    text = orjson.dumps({"event_id": "k1", "prompt_text": "tell me the SECRET recipe", "input_tokens": 1}).decode()
    raw = text.encode(encoding)
    if bom:
        raw = "\ufeff".encode(encoding) + raw
    record = dead_letter_record(raw, "invalid JSON", 10_000, source_topic="t", source_partition=0, source_offset=7)
    jsonschema.validate(record, DLQ)
    body = raw_of(record)
    assert record["raw"].startswith("[redacted: ") and record["source_offset"] == 7
    for enc in WIDE + ["utf-8"]:
        assert "SECRET".encode(enc) not in body


@pytest.mark.parametrize("encoding", WIDE)
def test_utf16_and_utf32_without_prompt_text_are_kept(encoding):
    raw = '{"event_id": "k1", "input_tokens": "many"}'.encode(encoding)
    record = dead_letter_record(raw, "invalid JSON", 10_000)
    assert raw_of(record) == raw, "as text (ASCII in UTF-16 is valid UTF-8) or base64"


@pytest.mark.parametrize(("line", "inside"), [
    (b'{"event_id":"k1","prompt_text":"first \\', True),  # the split of the test above
    (b'{"event_id":"k1","prompt_text":"first line', True),
    (b'{"a":1,"meta":{"prompt_text":["one","two', True),
    (b'{"prompt\\u005ftext":"escaped key', True),
    (b"{'prompt_text': 'a Python repr", True),
    (b'"{\\"prompt_text\\": \\"JSON encoded twice', True),
    (b'{"prompt_text":"closed","user_agent":"open', False),
    (b'{"prompt_text":"closed \\" quote","input_tokens":"many"}', False),
    (b'{"event_id":"k1","user_agent":"open', False),
    (b'SECRET rest","x":1}', False),
    (b"", False),
])
def test_ends_inside_prompt(line, inside):
    assert ends_inside_prompt(line) is inside


def test_a_continuation_record_keeps_reason_and_line_but_not_the_bytes():
    record = dead_letter_record(b'SECRET rest","x":1}', "invalid JSON: x", 100, continues_prompt=True,
                                source_file="f", line=4)
    jsonschema.validate(record, DLQ)
    assert record["raw"].startswith("[redacted: ") and "SECRET" not in record["raw"]
    assert record["reason"] == "invalid JSON: x" and record["line"] == 4 and record["source_file"] == "f"

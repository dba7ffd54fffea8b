"""bytes -> validated, typed usage event, compiled from ``usage_event.schema.json``.

Validating every event with a general JSON Schema engine costs tens of
microseconds; the pipeline's budget is a few. So this module reads the schema
file once and compiles each property into a small checker closure. It supports
exactly the keywords the schema uses (``type``, ``minLength``, ``maxLength``,
``minimum``, ``maximum``, ``pattern``, ``enum``, ``format: date-time``) and
refuses to load a schema that uses any other, so the file stays the single
source of truth; ``tests/test_codec_conformance.py`` proves that the codec and
``jsonschema`` accept and reject the same generated corpus.

Bytes take a fast path first: a msgspec decoder built from the same schema
(typed dict, length/range/pattern constraints checked in C while parsing,
about twice as fast as parse-then-check). It accepts a strict subset of what
the checker accepts and returns the same dict; anything it refuses (a float
where an integer is expected, an error to explain, ...) is decoded again by
the compiled checker, which alone words the dead-letter reason.

Semantics follow JSON Schema: ``integer`` accepts a float with no fractional
part (normalised to ``int``), ``number`` is normalised to ``float`` (an
integer beyond a double's range is refused), booleans are never numbers, ``pattern`` is a
search (not a full match). ``null`` on an optional field means absent. Unknown
fields are dropped. ``prompt_text`` is handed to a feature hook and dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

import msgspec
import orjson

from schemas.event import Event

SCHEMA_FILES = {
    "usage_event": "usage_event.schema.json",
    "alert": "alert.schema.json",
    "feedback": "feedback.schema.json",
    "dead_letter": "dead_letter.schema.json",
}
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
_SUPPORTED = {"type", "minLength", "maxLength", "minimum", "maximum", "pattern", "enum", "format", "description"}

PromptHook = Callable[[str], Mapping[str, Any]]


class DecodeError(ValueError):
    """An input that is not a valid usage event; ``reason`` is the dead-letter reason."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load one of the contract's JSON Schema files (``usage_event``, ``alert``, ...)."""
    text = resources.files("schemas").joinpath(SCHEMA_FILES[name]).read_bytes()
    return orjson.loads(text)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def parse_timestamp(value: str) -> float:
    """RFC 3339 (already pattern-checked) -> epoch seconds; range errors raise ValueError."""
    return datetime.fromisoformat(value).timestamp()


def _property_code(name: str, spec: Mapping[str, Any], required: bool, consts: dict[str, Any]) -> list[str]:
    """Python source lines that check and copy one property (``v`` holds its value)."""
    unknown = set(spec) - _SUPPORTED
    if unknown:
        raise ValueError(f"schema property {name!r} uses unsupported keywords {sorted(unknown)}")
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    base = [t for t in types if t != "null"]
    if len(base) != 1:
        raise ValueError(f"schema property {name!r}: exactly one non-null type is supported")
    kind, nullable = base[0], "null" in types
    if "format" in spec and (spec["format"] != "date-time" or kind != "string"):
        raise ValueError(f"schema property {name!r}: only format date-time on strings is supported")

    def fail(problem: str, value_suffix: bool = False) -> str:
        """A raise statement; with ``value_suffix`` the offending value is appended."""
        msg = repr(f"{name}: {problem}")
        return f"raise DecodeError({msg} + repr(v), {name!r})" if value_suffix else f"raise DecodeError({msg}, {name!r})"

    # ``n`` counts known keys seen; ``clean`` stays True while obj can be returned as it is
    if required:
        lines = [f"v = get({name!r}, MISSING)", "if v is MISSING:", "    " + fail("required field missing"),
                 "n += 1", "if v is None:", "    " + ("clean = False" if nullable else fail("must not be null")), "else:"]
    else:  # a membership test is cheaper than get() for the many absent optional fields
        if not nullable:
            raise ValueError(f"schema property {name!r}: optional properties must allow null (= absent)")
        lines = [f"if {name!r} in obj:", "    n += 1", f"    v = obj[{name!r}]", "    if v is None:",
                 "        clean = False", "    else:"]
    wrong = f"raise DecodeError({name + ': expected ' + kind + ', got '!r} + type_name(v), {name!r})"
    body: list[str] = []
    if kind == "string":
        body += ["if type(v) is not str:", "    " + wrong]
        if "minLength" in spec:
            body += [f"if len(v) < {spec['minLength']}:", "    " + fail(f"shorter than {spec['minLength']} characters")]
        if "maxLength" in spec:
            body += [f"if len(v) > {spec['maxLength']}:", "    " + fail(f"longer than {spec['maxLength']} characters")]
        if "pattern" in spec:
            consts[f"re_{name}"] = re.compile(spec["pattern"]).search
            body += [f"if re_{name}(v) is None:", "    " + fail("does not match the required format")]
        if spec.get("format") == "date-time":
            body += ["try:", "    ts = parse_timestamp(v)", "except (ValueError, OverflowError):",
                     "    " + fail("not a valid date-time")]
    elif kind == "integer":
        body += ["if type(v) is not int:", "    if type(v) is float and v.is_integer():", f"        obj[{name!r}] = v = int(v)",
                 "    else:", "        " + wrong]
    elif kind == "number":  # normalised to float; an integer too large for a double is refused, not kept
        body += ["if type(v) is not float:", "    if type(v) is not int:", "        " + wrong, "    try:",
                 f"        obj[{name!r}] = v = float(v)", "    except OverflowError:",
                 "        " + fail("number out of range")]
    elif kind == "boolean":
        body += ["if type(v) is not bool:", "    " + wrong]
    else:
        raise ValueError(f"schema property {name!r}: type {kind!r} is not supported")
    if "minimum" in spec:
        body += [f"if v < {spec['minimum']!r}:", "    " + fail(f"must be >= {spec['minimum']}, got ", True)]
    if "maximum" in spec:
        body += [f"if v > {spec['maximum']!r}:", "    " + fail(f"must be <= {spec['maximum']}, got ", True)]
    enum = [e for e in spec.get("enum", []) if e is not None]
    if enum:
        consts[f"enum_{name}"] = enum
        allowed = ", ".join(orjson.dumps(e).decode() for e in spec["enum"])
        body += [f"if v not in enum_{name}:", "    " + fail(f"must be one of [{allowed}], got ", True)]
    if name == "prompt_text":
        body += ["text = v", "clean = False"]
    indent = "    " if required else "        "
    return lines + [indent + line for line in body]


def _compile_decoder(schema: Mapping[str, Any]) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]:
    """Generate one straight-line function that validates every property of the schema in place.

    Generated code (as fastjsonschema does) keeps per-event cost to a few
    microseconds; it also normalises integers, drops unknown and null fields,
    and derives ``ts``, which a plain validator would not.
    """
    required = set(schema["required"])
    consts: dict[str, Any] = {}
    src = ["def decode(obj):", "    n = 0", "    clean = True", "    text = None", "    ts = None", "    get = obj.get"]
    for name, spec in schema["properties"].items():
        src += ["    " + line for line in _property_code(name, spec, name in required, consts)]
    # the common case (no unknown, null or prompt fields) keeps the parsed dict as it is
    src += ["    if not clean or n != len(obj):",
            "        obj = {k: v for k, v in obj.items() if k in KEEP and v is not None}",
            "    obj['ts'] = ts", "    return obj, text"]
    consts["KEEP"] = frozenset(schema["properties"]) - {"prompt_text"}
    env: dict[str, Any] = {"MISSING": object(), "DecodeError": DecodeError, "type_name": _type_name,
                           "parse_timestamp": parse_timestamp, **consts}
    exec(compile("\n".join(src), "<usage_event decoder>", "exec"), env)  # noqa: S102 - source built from our own schema
    return env["decode"]


def _fast_type(name: str, spec: Mapping[str, Any]) -> Any:
    """The msgspec type of one property; optional ones allow null (dropped after decoding)."""
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    kind = next(t for t in types if t != "null")
    enum = [e for e in spec.get("enum", []) if e is not None]
    if enum:
        return Literal[tuple(enum)]  # type: ignore[valid-type]
    if kind == "string":
        meta = {"min_length": spec.get("minLength"), "max_length": spec.get("maxLength"), "pattern": spec.get("pattern")}
        base: Any = str
    elif kind in ("integer", "number"):
        meta = {"ge": spec.get("minimum"), "le": spec.get("maximum")}
        base = int if kind == "integer" else float  # msgspec turns JSON integers into floats for ``float``
    elif kind == "boolean":
        return bool
    else:
        raise ValueError(f"schema property {name!r}: type {kind!r} is not supported")
    meta = {k: v for k, v in meta.items() if v is not None}
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


def _fast_decoder(schema: Mapping[str, Any]) -> msgspec.json.Decoder:
    """A msgspec decoder for the schema's properties (unknown fields are skipped by msgspec)."""
    required = set(schema["required"])
    fields = {name: Required[_fast_type(name, spec)] if name in required else NotRequired[_fast_type(name, spec) | None]
              for name, spec in schema["properties"].items()}
    return msgspec.json.Decoder(TypedDict("FastUsageEvent", fields))  # type: ignore[operator]


class EventCodec:
    """Decode raw usage-event bytes into validated :class:`Event` dicts.

    ``prompt_hook`` receives ``prompt_text`` and returns derived fields
    (fingerprint, template id, ...) that fill fields the gateway did not send;
    the text itself is never returned, stored or logged.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_EVENT_BYTES, prompt_hook: PromptHook | None = None) -> None:
        self.max_bytes = max_bytes
        self.prompt_hook = prompt_hook
        self._decode = _compile_decoder(load_schema("usage_event"))
        self._fast = _fast_decoder(load_schema("usage_event")).decode

    def decode(self, raw: bytes | bytearray | memoryview | str) -> Event:
        """Validate one JSON document; raise :class:`DecodeError` naming the field and the problem."""
        if isinstance(raw, str):
            try:
                raw = raw.encode()
            except UnicodeEncodeError as exc:  # lone surrogates: not UTF-8, so not JSON
                raise DecodeError(f"invalid JSON: not valid UTF-8 ({exc.reason})") from None
        size = len(raw)
        if size > self.max_bytes:
            raise DecodeError(f"oversized: {size} bytes > limit {self.max_bytes}")
        try:
            out = self._fast(raw)
            ts = parse_timestamp(out["timestamp"])
            if type(raw) is memoryview or not raw.isascii():
                str(raw, "utf-8")  # msgspec skips unknown fields without checking their UTF-8; JSON is UTF-8 throughout
        except (msgspec.MsgspecError, ValueError, OverflowError, RecursionError):
            pass  # decode again below: the checker words the reason (or accepts what msgspec is stricter on)
        else:
            if None in out.values():
                out = {k: v for k, v in out.items() if v is not None}
            text = out.pop("prompt_text", None)
            out["ts"] = ts
            if text is not None:
                if self.prompt_hook is not None:
                    for key, value in self.prompt_hook(text).items():
                        out.setdefault(key, value)
            return out  # type: ignore[return-value]
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON: {exc}") from None
        return self.decode_obj(obj)

    def decode_obj(self, obj: Any) -> Event:
        """Validate an already parsed JSON value."""
        if type(obj) is not dict:
            raise DecodeError(f"not a JSON object: got {_type_name(obj)}")
        out, text = self._decode(obj)
        if text is not None and self.prompt_hook is not None:
            for key, value in self.prompt_hook(text).items():
                out.setdefault(key, value)
        return out  # type: ignore[return-value]


_PROMPT_FIELD = re.compile(rb'"prompt_text"\s*:\s*"(?:[^"\\]|\\.)*"?')


def _without_prompt(value: Any) -> tuple[Any, bool]:
    """``value`` with every ``prompt_text`` key removed at any depth, and whether one was found."""
    if isinstance(value, dict):
        found = "prompt_text" in value
        out = {}
        for k, v in value.items():
            if k == "prompt_text":
                continue
            out[k], sub = _without_prompt(v)
            found = found or sub
        return out, found
    if isinstance(value, list):
        items = [_without_prompt(v) for v in value]
        return [v for v, _ in items], any(f for _, f in items)
    return value, False


_MENTION = re.compile(rb"prompt[\s_\-]*text")  # prompt_text, 'prompt_text', promptText, prompt-text ... (lower-cased)
_ASCII_ESCAPE = re.compile(rb"\\u00([0-7][0-9a-fA-F])")
_REDACTED = b'"prompt_text":"[redacted]"'


def _mentions_prompt(data: bytes) -> bool:
    """Whether ``data`` still names a prompt text field in any spelling (``\\u``-escaped letters included)."""
    norm = _ASCII_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data).lower().replace(_REDACTED, b"")
    return _MENTION.search(norm) is not None


def strip_prompt(raw: bytes) -> bytes:
    """Return ``raw`` without any ``prompt_text``, so rejected input can be dead-lettered safely.

    Parseable JSON is re-serialised without the field at any depth; anything that does not parse gets the
    field's value redacted by pattern. If what is left still names a prompt text field in any form (a
    Python repr, an escaped key, JSON encoded twice), where its value ends cannot be known, so the whole
    input is replaced by a marker: the dead-letter record keeps its reason and source offset, never the text.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _PROMPT_FIELD.sub(_REDACTED, raw)
    else:
        clean, found = _without_prompt(obj)
        body = orjson.dumps(clean) if found else raw
    if _mentions_prompt(body):
        return b"[redacted: %d bytes of input naming a prompt text field that could not be removed safely]" % len(raw)
    return body

"""bytes -> validated, typed usage event, compiled from ``usage_event.schema.json``.

Validating every event with a general JSON Schema engine costs tens of
microseconds; the pipeline's budget is a few. So this module reads the schema
file once and compiles each property into a small checker closure. It supports
exactly the keywords the schema uses (``type``, ``minLength``, ``maxLength``,
``minimum``, ``maximum``, ``pattern``, ``enum``, ``format: date-time``, and the
three normalisation keywords below) and refuses to load a schema that uses any
other, so the file stays the single source of truth;
``tests/test_codec_conformance.py`` proves that the codec and ``jsonschema``
accept and reject the same generated corpus.

Only the contract's own limits reject an event (an attacker who controls a
field such as ``user_agent`` must not be able to get his events dead-lettered
and so hide them from the detector). Values that are valid but unbounded or
meaningless are normalised *after* validation, as the schema's ``x-`` keywords
say (JSON Schema validators ignore them):

* ``x-bound-length: N`` -- a string longer than N characters is replaced by
  ``"~"`` + the 24 hex digits of ``blake2b(value, digest_size=12)`` (UTF-8):
  state, summaries and cluster keys stay bounded, and equal values keep equal
  stand-ins (two events with the same 600-character user agent share a key);
* ``x-negative: absent`` -- a negative value of a count-like optional integer
  carries no meaning and is dropped, as if the field were absent;
* ``x-case: lower`` -- ASCII letters are lower-cased (hex fingerprints);
* ``x-clamp: N`` -- a larger integer is read as N (token counts the detector sums per window: no real
  request has 2^32 tokens, and sums of values near 2^64 would outgrow the 64-bit integers state snapshots hold).

Timestamps (``format: date-time``) accept lower-case ``t``/``z``; a leap second
(``:60``, accepted on any minute) is read as the last instant of its minute,
``HH:MM:59.999999``, so it stays in its minute and before the next one. The
``timestamp`` string itself is kept as sent; ``ts`` is the parsed time.

Bytes take a fast path first: a msgspec decoder built from the same schema
(typed dict, length/range/pattern constraints checked in C while parsing,
about twice as fast as parse-then-check). It accepts a strict subset of what
the checker accepts and returns the same dict: it is built with the
normalisation keywords turned into constraints (``maxLength: N``,
``minimum: 0``, no upper-case letter), integer bounds clamped to int64 and a
strict ``datetime.fromisoformat``, so only values that need no normalisation
pass it. Anything it refuses (a float where an integer is expected, a value to
normalise, an error to explain, ...) is decoded again by the compiled checker,
which alone normalises and words the dead-letter reason.

Semantics follow JSON Schema: ``integer`` accepts a float with no fractional
part (normalised to ``int``), ``number`` is normalised to ``float`` (an
integer beyond a double's range is refused), booleans are never numbers, ``pattern`` is a
search (not a full match). ``null`` on an optional field means absent. Unknown
fields are dropped. ``prompt_text`` is handed to a feature hook and dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

import msgspec
import orjson

from schemas.event import Event

_fromisoformat = datetime.fromisoformat

SCHEMA_FILES = {
    "usage_event": "usage_event.schema.json",
    "alert": "alert.schema.json",
    "feedback": "feedback.schema.json",
    "dead_letter": "dead_letter.schema.json",
}
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
_SUPPORTED = {"type", "minLength", "maxLength", "minimum", "maximum", "pattern", "enum", "format", "description",
              "x-bound-length", "x-negative", "x-case", "x-clamp"}
_INT64 = (-(2**63), 2**63 - 1)  # msgspec checks integer bounds only within int64
_STAND_IN_LEN = 25  # "~" + 24 hex digits

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
    """RFC 3339 (already pattern-checked) -> epoch seconds; range errors raise ValueError.

    Lower-case ``t``/``z`` are read as ``T``/``Z``; a leap second ``HH:MM:60[.f]`` is read as the last instant
    of its minute, ``HH:MM:59.999999`` (any fraction of the leap second collapses onto it).
    """
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        pass
    value = value.upper()
    if value[16:19] == ":60":
        rest = value[19:]
        value = value[:17] + "59.999999" + (rest.lstrip(".0123456789") if rest[:1] == "." else rest)
    return datetime.fromisoformat(value).timestamp()


def bound_string(value: str) -> str:
    """The fixed-length stand-in of an over-long string: ``"~"`` + BLAKE2b-96 hex of its UTF-8 bytes (stable)."""
    return "~" + hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _check_normalisers(name: str, spec: Mapping[str, Any], kind: str, required: bool) -> None:
    """Refuse normalisation keywords the codec cannot apply exactly as documented."""
    if "x-bound-length" in spec:
        limit = spec["x-bound-length"]
        if kind != "string" or type(limit) is not int or limit < _STAND_IN_LEN:
            raise ValueError(f"schema property {name!r}: x-bound-length needs a string and an integer >= {_STAND_IN_LEN}")
    if "x-negative" in spec and (kind != "integer" or required or spec["x-negative"] != "absent"):
        raise ValueError(f"schema property {name!r}: x-negative must be 'absent', on an optional integer")
    if "x-case" in spec and (kind != "string" or spec["x-case"] != "lower"):
        raise ValueError(f"schema property {name!r}: x-case must be 'lower', on a string")
    if "x-clamp" in spec and (kind != "integer" or type(spec["x-clamp"]) is not int or not 0 <= spec["x-clamp"] < 2**63):
        raise ValueError(f"schema property {name!r}: x-clamp needs an integer property and an int64 bound >= 0")


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
    _check_normalisers(name, spec, kind, required)

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
    # normalisation after validation (x- keywords); assigning an existing key keeps the key order
    if "x-bound-length" in spec:
        body += [f"if len(v) > {spec['x-bound-length']}:", f"    obj[{name!r}] = v = bound_string(v)"]
    if "x-case" in spec:
        body += ["w = v.translate(ASCII_LOWER)", "if w != v:", f"    obj[{name!r}] = v = w"]
    if "x-negative" in spec:
        body += ["if v < 0:", f"    obj[{name!r}] = None", "    clean = False"]
    if "x-clamp" in spec:
        body += [f"if v > {spec['x-clamp']}:", f"    obj[{name!r}] = v = {spec['x-clamp']}"]
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
                           "parse_timestamp": parse_timestamp, "bound_string": bound_string,
                           "ASCII_LOWER": _ASCII_LOWER, **consts}
    exec(compile("\n".join(src), "<usage_event decoder>", "exec"), env)  # noqa: S102 - source built from our own schema
    return env["decode"]


def _fast_type(name: str, spec: Mapping[str, Any]) -> Any:
    """The msgspec type of one property; optional ones allow null (dropped after decoding).

    It admits only values the checker accepts *and leaves as they are*: normalisation keywords become
    constraints (values that need normalising take the checker) and integer bounds are clamped to int64.
    """
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    kind = next(t for t in types if t != "null")
    enum = [e for e in spec.get("enum", []) if e is not None]
    if enum:
        return Literal[tuple(enum)]  # type: ignore[valid-type]
    if kind == "string":
        lengths = [x for x in (spec.get("maxLength"), spec.get("x-bound-length")) if x is not None]
        pattern = spec.get("pattern")
        if spec.get("x-case") == "lower":  # no ASCII upper-case letter anywhere, and still a search for ``pattern``
            pattern = r"\A(?=[^A-Z]*\Z)" + (rf"[\s\S]*?(?:{pattern})" if pattern else "")
        meta = {"min_length": spec.get("minLength"), "max_length": min(lengths) if lengths else None, "pattern": pattern}
        base: Any = str
    elif kind == "integer":
        lo, hi = spec.get("minimum", _INT64[0]), spec.get("maximum", _INT64[1])
        if spec.get("x-negative") == "absent":
            lo = max(lo, 0)
        if "x-clamp" in spec:  # values above it take the checker, which clamps them
            hi = min(hi, spec["x-clamp"])
        meta = {"ge": max(lo, _INT64[0]), "le": min(hi, _INT64[1])}
        base = int
    elif kind == "number":
        meta = {"ge": spec.get("minimum"), "le": spec.get("maximum")}
        base = float  # msgspec turns JSON integers into floats for ``float``
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
            ts = _fromisoformat(out["timestamp"]).timestamp()  # strict: t/z and leap seconds take the checker
            if type(raw) is memoryview or not raw.isascii():
                str(raw, "utf-8")  # msgspec skips unknown fields without checking their UTF-8; JSON is UTF-8 throughout
        except (msgspec.MsgspecError, ValueError, OverflowError, RecursionError):
            pass  # decode again below: the checker words the reason (or accepts what msgspec is stricter on)
        else:
            if None in out.values():
                out = {k: v for k, v in out.items() if v is not None}
            text = out.pop("prompt_text", None)
            out["ts"] = ts
            if text is not None and self.prompt_hook is not None:
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


# a prompt_text value up to its closing quote or the end of the input; DOTALL: ``\\`` + a raw newline is inside it
_PROMPT_FIELD = re.compile(rb'"prompt_text"\s*:\s*"(?:[^"\\]|\\.)*"?', re.DOTALL)


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


def _names_prompt(data: bytes) -> bool:
    norm = _ASCII_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data).lower().replace(_REDACTED, b"")
    return _MENTION.search(norm) is not None


_WIDE_ENCODINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def _mentions_prompt(data: bytes) -> bool:
    """Whether ``data`` still names a prompt text field in any spelling (``\\u``-escaped letters included).

    Also when it is UTF-16 or UTF-32 text (either byte order, with or without BOM), where the field name has
    NUL bytes between its letters: the check is repeated with NUL bytes removed and on those four decodings.
    Text of ASCII letters in those encodings always has NUL bytes, so input without any skips the extra work.
    """
    if _names_prompt(data):
        return True
    if b"\x00" not in data:
        return False
    if _names_prompt(data.replace(b"\x00", b"")):
        return True
    return any(_names_prompt(data.decode(enc, "replace").encode("utf-8", "replace")) for enc in _WIDE_ENCODINGS)


_JSON_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)("?)', re.DOTALL)  # group 2 is empty when the line ends inside it
_KEY_COLON = re.compile(rb"\s*:")


def ends_inside_prompt(line: bytes) -> bool:
    """Whether a rejected input line may end inside a prompt text value, so that the next lines continue it.

    In a JSON-lines file a raw newline inside a ``prompt_text`` string splits the event; the lines after it
    are the rest of the prompt and need not name the field. True when ``line`` ends inside an unterminated
    JSON string whose nearest preceding key names a prompt text field (its value, or an element of an array
    or object under it), and -- conservatively -- when the line names a prompt text field other than as a
    JSON key (a Python repr, JSON encoded twice): where that value ends cannot be known.
    """
    pos = 0
    key: bytes | None = None
    keyed = False  # some JSON key names a prompt text field
    while (start := line.find(b'"', pos)) >= 0:
        m = _JSON_STRING.match(line, start)
        if not m.group(2):  # no closing quote before the end of the line
            return (key is not None and _mentions_prompt(key)) or (not keyed and _mentions_prompt(line))
        pos = m.end()
        if _KEY_COLON.match(line, pos):
            key = m.group(1)
            keyed = keyed or _mentions_prompt(key)
    return not keyed and _mentions_prompt(line)


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

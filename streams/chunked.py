"""State values larger than a Kafka record, split across several keys of a changelog-backed table.

Why: a table write is one record on its changelog topic, and Faust's producer refuses records over
1,000,000 bytes (brokers default to about 1 MB too). The cluster stage's checkpoint grows with the
tenants it profiles (about 1 MB with 50,000 of them), and a refused write crashed the worker.

Layout under ``key``: chunks at ``key/<generation>/<i>``, then a header at ``key`` naming the
generation and the chunk count. A new value is written under the next generation and the header is
written last, so a worker that dies half-way leaves the previous header and its chunks intact; the
previous generation's chunks are deleted once the new header is written. A value without the header
magic is read as the whole value (the single-record layout of earlier versions).
"""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson

MAGIC = b"DGCH"  # a header; earlier single-record values start with a u32 length (first byte 0)


class ChunkError(ValueError):
    """The header names chunks the table does not hold (a changelog cut short, or another writer)."""


def _chunk_key(key: bytes, generation: int, index: int) -> bytes:
    return b"%s/%d/%d" % (key, generation, index)


def _header(value: bytes | None) -> dict | None:
    """A stored value's header (``generation``, ``chunks``, ``bytes``), or None (no value, or a single-record one)."""
    if value is None or not value.startswith(MAGIC):
        return None
    return orjson.loads(value[len(MAGIC):])


def read_header(table: MutableMapping[bytes, bytes], key: bytes) -> dict | None:
    """The header under ``key``, or None (no value, or a single-record one)."""
    return _header(table.get(key))


def read(table: MutableMapping[bytes, bytes], key: bytes) -> bytes | None:
    """The value stored under ``key`` (chunked or single-record), or None; :class:`ChunkError` if a chunk is missing."""
    value = table.get(key)
    head = _header(value)
    if head is None:
        return value
    parts = []
    for i in range(int(head["chunks"])):
        part = table.get(_chunk_key(key, int(head["generation"]), i))
        if part is None:
            raise ChunkError(f"chunk {i} of {head['chunks']} (generation {head['generation']}) of {key!r} is missing")
        parts.append(part)
    data = b"".join(parts)
    if len(data) != int(head["bytes"]):
        raise ChunkError(f"{key!r}: {len(data)} bytes in the chunks, the header says {head['bytes']}")
    return data


def write(table: MutableMapping[bytes, bytes], key: bytes, data: bytes, chunk_bytes: int) -> int:
    """Store ``data`` under ``key`` in records of at most ``chunk_bytes``; returns the number of chunks.

    Every write goes through the table (so to its changelog, in this order): the new generation's
    chunks, the header, then deletions of the previous generation's chunks.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be positive")
    old = read_header(table, key)
    generation = (int(old["generation"]) + 1) if old else 1
    chunks = [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    for i, part in enumerate(chunks):
        table[_chunk_key(key, generation, i)] = part
    table[key] = MAGIC + orjson.dumps({"generation": generation, "chunks": len(chunks), "bytes": len(data)})
    if old:
        for i in range(int(old["chunks"])):
            stale = _chunk_key(key, int(old["generation"]), i)
            if stale in table:
                del table[stale]
    return len(chunks)

"""streams/chunked.py: state values split across table keys so no changelog record outgrows Kafka's limit.

The table here is a dict: the layout's rules do not depend on Faust. The worker path (a cluster
checkpoint of many chunks restored by another worker) runs in tests/test_streaming_kafka.py.
"""

from __future__ import annotations

import os

import pytest

from streams import chunked


class RecordingTable(dict):
    """A dict that records every write and delete in order, as a changelog would."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, bytes, int]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.log.append(("set", key, len(value)))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.log.append(("del", key, 0))
        super().__delitem__(key)


def test_a_large_value_is_split_into_records_under_the_limit_and_read_back_whole() -> None:
    table, data = RecordingTable(), os.urandom(2_500_000)
    assert chunked.write(table, b"cluster", data, 512 * 1024) == 5
    assert max(size for op, _, size in table.log if op == "set") <= 512 * 1024
    assert chunked.read(table, b"cluster") == data
    assert table.log[-1][:2] == ("set", b"cluster")  # the header last: it makes the new value visible


def test_a_rewrite_deletes_the_previous_generation_after_its_header() -> None:
    table = RecordingTable()
    chunked.write(table, b"cluster", b"a" * 3000, 1024)
    table.log.clear()
    chunked.write(table, b"cluster", b"b" * 1500, 1024)
    assert chunked.read(table, b"cluster") == b"b" * 1500
    header_at = next(i for i, (op, key, _) in enumerate(table.log) if op == "set" and key == b"cluster")
    deletes = [i for i, (op, _, _) in enumerate(table.log) if op == "del"]
    assert len(deletes) == 3 and min(deletes) > header_at
    assert sorted(k for k in table if k != b"cluster") == [b"cluster/2/0", b"cluster/2/1"]


def test_a_write_cut_short_before_its_header_leaves_the_previous_value_readable() -> None:
    table: dict[bytes, bytes] = {}
    chunked.write(table, b"cluster", b"old" * 1000, 1024)

    class Dies(dict):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            if key == b"cluster":
                raise RuntimeError("worker killed")
            table[key] = value

        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            return table.get(key, default)

    with pytest.raises(RuntimeError):
        chunked.write(Dies(), b"cluster", b"new" * 5000, 1024)
    assert chunked.read(table, b"cluster") == b"old" * 1000
    chunked.write(table, b"cluster", b"newer", 1024)  # the next write reuses the orphaned generation's keys
    assert chunked.read(table, b"cluster") == b"newer"


def test_missing_chunks_are_an_error_not_a_short_value() -> None:
    table: dict[bytes, bytes] = {}
    chunked.write(table, b"cluster", b"x" * 5000, 1024)
    del table[b"cluster/1/2"]
    with pytest.raises(chunked.ChunkError, match="chunk 2 of 5"):
        chunked.read(table, b"cluster")


def test_single_record_values_of_earlier_versions_are_read_as_they_are() -> None:
    legacy = (7).to_bytes(4, "big") + b'{"a":1}' + b"snapshot"  # u32 length + JSON + snapshot
    table = {b"cluster": legacy}
    assert chunked.read(table, b"cluster") == legacy
    assert chunked.read({}, b"cluster") is None
    chunked.write(table, b"cluster", b"new", 1024)  # and the first chunked write replaces it
    assert chunked.read(table, b"cluster") == b"new"


def test_empty_value_round_trips() -> None:
    table: dict[bytes, bytes] = {}
    assert chunked.write(table, b"k", b"", 1024) == 1
    assert chunked.read(table, b"k") == b""

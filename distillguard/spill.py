"""Disk-backed ``tenant_id -> snapshot`` store for embedded runs (``detect``): RocksDB via rocksdict.

Why: with a tenant cap, evicted tenants must live somewhere other than memory, or the cap bounds
nothing. The worker uses its changelog-backed Faust table (``table_store``); an embedded run has no
table, so it spills to a private RocksDB directory, created on the first eviction and deleted on close.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any


class SpillStore(MutableMapping[str, bytes]):
    """A RocksDB directory under ``parent`` (default: the system temp dir), removed by :meth:`close`."""

    def __init__(self, parent: str | Path | None = None) -> None:
        self._parent = parent
        self._dir: str | None = None
        self._db: Any = None

    def _open(self) -> Any:
        if self._db is None:
            from rocksdict import Options, Rdict, WriteOptions

            self._dir = tempfile.mkdtemp(prefix="distillguard-spill-", dir=self._parent)
            opts = Options(raw_mode=True)
            opts.set_write_buffer_size(16 << 20)  # small memtables: the point is to keep memory bounded
            self._db = Rdict(self._dir, options=opts)
            no_wal = WriteOptions()
            no_wal.disable_wal = True  # scratch data, deleted on close: no write-ahead log needed
            self._db.set_write_options(no_wal)
        return self._db

    def __getitem__(self, key: str) -> bytes:
        if self._db is None:
            raise KeyError(key)
        value = self._db.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # the hot path: no exception for a miss
        if self._db is None:
            return default
        value = self._db.get(key.encode())
        return default if value is None else value

    def __setitem__(self, key: str, value: bytes) -> None:
        self._open()[key.encode()] = bytes(value)

    def __delitem__(self, key: str) -> None:
        if self._db is None or self._db.get(key.encode()) is None:
            raise KeyError(key)
        del self._db[key.encode()]

    def __iter__(self) -> Iterator[str]:
        if self._db is None:
            return iter(())
        return (k.decode() for k in self._db.keys())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        """Close the database and delete its directory."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SpillStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Run the detection engine in-process over a simulation (or an events file) and collect alerts and window scores."""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson

# alert fields that may reach a report; anything else (there should be nothing else) is dropped
ALERT_FIELDS = ("alert_id", "schema_version", "kind", "status", "tenant_id", "tenant_ids", "account_ids", "cluster_id",
                "severity", "score", "detected_at", "first_seen", "window_start", "window_end", "reasons", "evidence",
                "detector_version", "metadata")


def safe_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert restricted to contract fields (defence in depth: prompt text can never ride along)."""
    return {k: alert[k] for k in ALERT_FIELDS if k in alert}


@dataclass
class EngineRun:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    windows: list[tuple[str, float, float, float]] = field(default_factory=list)
    events: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: float = 0.0
    open_threshold: float | None = None
    engine_stats: dict[str, Any] = field(default_factory=dict)


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0][:60]


def run_engine(lines: Iterable[bytes], *, progress_total: int | None = None, show_progress: bool | None = None,
               on_alert: Callable[[dict[str, Any]], None] | None = None, engine_config: Any = None) -> EngineRun:
    """Decode each line with the contract codec (prompt text -> features, then dropped) and feed ``detectors.Engine``."""
    from detectors import DetectorConfig, Engine
    from detectors.features import prompt_features
    from schemas import DecodeError, EventCodec

    out = EngineRun()
    windows = out.windows

    def on_window(tenant_id: str, ws: float, we: float, score: float, _signals: dict[str, float]) -> None:
        windows.append((tenant_id, ws, we, score))

    cfg = engine_config or DetectorConfig()
    out.open_threshold = getattr(cfg, "open_threshold", None)
    engine = Engine(cfg, on_window=on_window)
    codec = EventCodec(prompt_hook=prompt_features)
    decode, process = codec.decode, engine.process
    alerts = out.alerts

    def emit(batch: list[dict[str, Any]]) -> None:
        for a in batch:
            a = safe_alert(a)
            alerts.append(a)
            if on_alert is not None:
                on_alert(a)

    show = sys.stderr.isatty() if show_progress is None else show_progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=progress_total, unit="ev", unit_scale=True, desc="evaluate", file=sys.stderr)
    t0 = time.perf_counter()
    n = 0
    try:
        for raw in lines:
            n += 1
            if bar is not None and n % 8192 == 0:
                bar.update(8192)
            try:
                ev = decode(raw)
            except DecodeError as exc:
                out.rejected += 1
                out.rejected_by_reason[_reason_kind(exc.reason)] += 1
                continue
            out.events += 1
            res = process(ev)
            if res:
                emit(res)
        emit(engine.finish())
    finally:
        if bar is not None:
            bar.update(n % 8192)
            bar.close()
    out.seconds = time.perf_counter() - t0
    try:
        out.engine_stats = {k: v for k, v in engine.stats.items() if isinstance(v, (int, float, str))}
    except Exception:  # noqa: BLE001 - stats are informative only
        out.engine_stats = {}
    return out


def record_lines(sim: Any) -> Iterator[bytes]:
    for rec in sim.records():
        yield rec.line


def file_lines(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for line in f:
            body = line.rstrip(b"\r\n")
            if body.strip():
                yield body


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


PARENT_CHECK_S = 1.0  # how often the child checks that its parent is still there (and the parent, the child)


def _exit_with_parent(parent: int) -> None:  # pragma: no cover - a thread of the child process
    """End the child once its parent is gone (killed without clean-up, e.g. SIGKILL): blocked on a full queue,
    or at its exit waiting to flush lines nobody reads any more, it would otherwise live on as an orphan."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _produce(config: Any, queue: Any, batch: int, parent: int) -> None:  # pragma: no cover - runs in the child
    import signal
    import threading

    from simulator import generate

    # The parent decides when this process stops (it terminates it on Ctrl-C, SIGTERM or an error): a Ctrl-C in
    # the terminal reaches the whole process group, and the parent's SIGTERM handler is not for this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()
    try:
        sim = generate(config)
        buf: list[bytes] = []
        for rec in sim.records():
            buf.append(rec.line)
            if len(buf) >= batch:
                queue.put(buf)
                buf = []
        if buf:
            queue.put(buf)
        queue.put(("labels", orjson.dumps(sim.labels())))
    except Exception as exc:  # noqa: BLE001 - report any failure to the parent instead of hanging it
        queue.put(("error", repr(exc)))


class ParallelSimulation:
    """Generate a simulation in a child process while the parent runs the engine (two cores instead of one).

    ``lines()`` yields exactly the bytes ``generate(config).records()`` would, in the same order;
    ``labels()`` is available once ``lines()`` is exhausted. Use it as a context manager (or call ``close()``):
    leaving early (an error, Ctrl-C, SIGTERM turned into SystemExit) terminates the child at once, since a child
    blocked on a full queue never ends by itself.
    """

    def __init__(self, config: Any, batch: int = 2048) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        self._queue = ctx.Queue(maxsize=64)
        self._proc = ctx.Process(target=_produce, args=(config, self._queue, batch, os.getpid()), daemon=True)
        self._labels: dict[str, Any] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id once started (for tests that check it is gone)."""
        return self._proc.pid

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self) -> Any:
        """The next item; a child that died without a word (killed, out of memory) is an error, not a hang."""
        import queue as queue_module

        while True:
            try:
                return self._queue.get(timeout=PARENT_CHECK_S)
            except queue_module.Empty:
                if self._proc.is_alive():
                    continue
            try:  # it may have put its last item just before it ended
                return self._queue.get(timeout=PARENT_CHECK_S)
            except queue_module.Empty:
                raise RuntimeError(f"simulation process ended with exit code {self._proc.exitcode} "
                                   "before its labels") from None

    def lines(self) -> Iterator[bytes]:
        self._proc.start()
        finished = False
        try:
            while True:
                item = self._get()
                if isinstance(item, tuple):
                    if item[0] == "error":
                        raise RuntimeError(f"simulation process failed: {item[1]}")
                    self._labels = orjson.loads(item[1])
                    finished = True
                    break
                yield from item
        finally:
            self.close(wait=finished)

    def close(self, wait: bool = False) -> None:
        """Stop the child: after its labels it ends by itself (``wait``), otherwise it is terminated at once."""
        if self._proc.pid is None:  # never started
            return
        if wait:
            self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)

    def labels(self) -> dict[str, Any]:
        if self._labels is None:
            raise RuntimeError("labels are complete only after lines() is exhausted")
        return self._labels

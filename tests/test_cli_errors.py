"""User errors on the command line end in one clear line on stderr and exit status 2: no traceback, no hang.

Every test runs the real CLI as a subprocess over small real files; none needs a Kafka broker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent
DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")}
    out.pop("PYTHONUNBUFFERED", None)
    out.update(extra)
    return out


def cli(*args: str, stdout: int | None = subprocess.PIPE, timeout: float = 60,
        **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], cwd=REPO, env=env(**extra_env),
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout, check=False)


def message_lines(stderr: str) -> list[str]:
    """stderr without the JSON log lines."""
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


def assert_clean_failure(res: subprocess.CompletedProcess[str], expected: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert any(expected in line for line in message_lines(res.stderr)), res.stderr


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """Half an hour of one extraction tenant (enough for a couple of alerts) plus one invalid line."""
    from detectors import synthetic as S

    rows = [orjson.dumps({k: v for k, v in e.items() if k != "ts"}) for e in S.extraction("x", hours=0.5)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([*rows, b"{not json"]) + b"\n")
    return path


@pytest.fixture
def bad_lines(tmp_path: Path) -> Path:
    """Enough invalid lines that their dead-letter records overflow any write buffer mid-run."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"{not json\n" * 3000)
    return path


# ---------------------------------------------------------------------------------------------- detect
@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--window-seconds", "0", "argument --window-seconds: must be greater than 0"),
    ("--window-seconds", "-5", "argument --window-seconds: must be greater than 0"),
    ("--window-seconds", "nan", "argument --window-seconds: must be a finite number"),
    ("--window-seconds", "inf", "argument --window-seconds: must be a finite number"),
    ("--allowed-lateness", "-1", "argument --allowed-lateness: must not be negative"),
    ("--allowed-lateness", "inf", "argument --allowed-lateness: must be a finite number"),
])
def test_detect_rejects_invalid_window_options(events: Path, tmp_path: Path, option: str, value: str,
                                               expected: str) -> None:
    out = tmp_path / "alerts.jsonl"
    res = cli("detect", "-i", str(events), "-o", str(out), option, value)
    assert_clean_failure(res, expected)
    assert not out.exists(), "rejected before any output is opened"


def test_detect_valid_options_still_work(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    res = cli("detect", "-i", str(events), "-o", str(out), "--allowed-lateness", "0", "--window-seconds", "60")
    assert res.returncode == 0, res.stderr
    assert "detect finished" in res.stderr and out.read_bytes().count(b"\n") >= 1


def test_detect_unopenable_output_names_it(events: Path, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "alerts.jsonl"
    res = cli("detect", "-i", str(events), "-o", str(target))
    assert_clean_failure(res, f"distillguard detect: cannot write {target}: No such file or directory")
    assert "cannot read input" not in res.stderr


@needs_dev_full
def test_detect_full_disk_on_output_is_a_write_error(events: Path) -> None:
    # the few alerts fit in the write buffer: the error surfaces when the output is closed at the end
    res = cli("detect", "-i", str(events), "-o", str(DEV_FULL))
    assert_clean_failure(res, "distillguard detect: cannot write /dev/full: No space left on device")
    assert "cannot read input" not in res.stderr and "detect finished" not in res.stderr


@needs_dev_full
def test_detect_full_disk_on_dead_letter_is_a_write_error(bad_lines: Path, tmp_path: Path) -> None:
    # ~600 kB of dead-letter records: the error surfaces mid-run, while writing
    res = cli("detect", "-i", str(bad_lines), "-o", str(tmp_path / "alerts.jsonl"), "--dead-letter", str(DEV_FULL))
    assert_clean_failure(res, "distillguard detect: cannot write /dev/full: No space left on device")
    assert "cannot read input" not in res.stderr


@needs_dev_full
def test_detect_full_disk_on_stdout_is_a_write_error(events: Path) -> None:
    with DEV_FULL.open("wb") as full:
        res = cli("detect", "-i", str(events), stdout=full.fileno())
    assert_clean_failure(res, "distillguard detect: cannot write stdout: No space left on device")


@pytest.mark.parametrize("what", ["alerts at exit", "dead letters mid-run"])
def test_detect_reader_of_stdout_gone_exits_quietly(events: Path, bad_lines: Path, what: str) -> None:
    """``detect ... | head -1``: the pipe's reader is gone, so writing to stdout fails with EPIPE."""
    args = ["-i", str(events)] if what == "alerts at exit" else ["-i", str(bad_lines), "--dead-letter", "-"]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = cli("detect", *args, stdout=write_end)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    assert not message_lines(res.stderr), "quiet: no message for a reader that went away"


# ---------------------------------------------------------------------------------------------- simulate
@pytest.mark.parametrize(("option", "value"), [
    ("--intensity", "-1"), ("--intensity", "0"), ("--intensity", "nan"), ("--days", "0"), ("--tenants", "0"),
    ("--volume", "0"), ("--volume", "inf"), ("--malformed-share", "1.5"), ("--malformed-share", "-0.1"),
    ("--rate", "0"),
])
def test_simulate_rejects_invalid_options(tmp_path: Path, option: str, value: str) -> None:
    out = tmp_path / "events.jsonl"
    res = cli("simulate", "--out", str(out), option, value, timeout=20)  # --intensity -1 used to hang
    assert_clean_failure(res, f"argument {option}: must be")
    assert not out.exists()


def test_simulate_unwritable_out_or_labels(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    res = cli("simulate", "--tenants", "2", "--out", str(missing / "events.jsonl"))
    assert_clean_failure(res, f"distillguard simulate: cannot write {missing / 'events.jsonl'}: No such file or directory")
    start = time.monotonic()
    res = cli("simulate", "--tenants", "2", "--out", str(tmp_path / "events.jsonl"),
              "--labels", str(missing / "labels.json"))
    assert_clean_failure(res, f"distillguard simulate: cannot write {missing / 'labels.json'}: No such file or directory")
    assert time.monotonic() - start < 15, "a bad --labels path fails before the events are generated"


@needs_dev_full
def test_simulate_full_disk(tmp_path: Path) -> None:
    res = cli("simulate", "--tenants", "2", "--out", str(DEV_FULL))
    assert_clean_failure(res, "distillguard simulate: cannot write /dev/full: No space left on device")


def test_simulate_reader_of_stdout_gone_exits_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = cli("simulate", "--tenants", "2", stdout=write_end)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr
    assert "Traceback" not in res.stderr and not message_lines(res.stderr), res.stderr


# ---------------------------------------------------------------------------------------------- feedback, topics
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_feedback_unreachable_broker_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    res = cli("feedback", "--alert-id", "a-1", "--tenant", "acme", "--label", "true_positive", timeout=30,
              DISTILLGUARD_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port()}")
    assert_clean_failure(res, "distillguard feedback: cannot connect to Kafka")
    assert time.monotonic() - start < 15, "no 30 s wait for the producer's bootstrap timeout"
    assert "sent" not in res.stdout


def test_feedback_invalid_record_is_reported_before_the_broker(tmp_path: Path) -> None:
    res = cli("feedback", "--alert-id", "a-1", "--label", "true_positive", timeout=30,
              DISTILLGUARD_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port()}")
    assert_clean_failure(res, "distillguard feedback: verdict: tenant_id is missing")
    assert "cannot connect" not in res.stderr


@pytest.mark.parametrize("value", ["0", "-3"])
def test_topics_create_rejects_fewer_than_one_partition(value: str) -> None:
    res = cli("topics", "create", "--partitions", value, DISTILLGUARD_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port()}")
    assert_clean_failure(res, "argument --partitions: must be at least 1")
    assert "cannot connect" not in res.stderr, "rejected at parsing, before any broker is contacted"


def test_topics_help_names_every_topic_it_creates() -> None:
    res = cli("topics", "create", "--help", COLUMNS="1000")  # one line: no words split at a hyphen
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    for topic in ("events", "dead-letter", "alerts", "feedback", "notifications", "OCSF", "ECS"):
        assert topic in text
    assert "retention settings" not in text and "broker's defaults" in text


@pytest.mark.parametrize(("args", "expected"), [
    (["--from", "2026-06-02", "--to", "2026-06-01"], "--to (2026-06-01) must be after --from (2026-06-02)"),
    (["--from", "2026-06-0x"], "not a time: '2026-06-0x'"),
    (["--window-seconds", "0"], "argument --window-seconds: must be greater than 0"),
    (["--lookback-seconds", "-5"], "argument --lookback-seconds: must not be negative"),
])
def test_replay_rejects_a_bad_range_or_option_before_contacting_the_broker(tmp_path: Path, args: list[str],
                                                                            expected: str) -> None:
    """Nothing listens on the broker address: the error must come from the options, at once."""
    started = time.monotonic()
    res = cli("replay", *args, "--output", str(tmp_path / "a.jsonl"), DISTILLGUARD_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert_clean_failure(res, expected)
    assert "cannot connect" not in res.stderr and time.monotonic() - started < 30


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, "webhook_url is set but neither webhook_secret nor webhook_secret_file gives a signing key"),
    ({"DISTILLGUARD_WEBHOOK_SECRET_FILE": "/nonexistent/secret"},
     "webhook_secret_file '/nonexistent/secret' cannot be read (No such file or directory)"),
])
def test_worker_with_an_unsigned_webhook_stops_at_once_in_one_line(extra: dict[str, str], expected: str) -> None:
    """Checked before the worker waits for its broker (none listens here): no traceback, exit 2, at once."""
    started = time.monotonic()
    res = cli("worker", "--web-port", str(free_port()), DISTILLGUARD_BOOTSTRAP_SERVERS="127.0.0.1:1",
              DISTILLGUARD_WEBHOOK_URL="http://127.0.0.1:9/hook", **extra)
    assert_clean_failure(res, expected)
    assert time.monotonic() - started < 30 and "broker_unreachable_at_start" not in res.stderr

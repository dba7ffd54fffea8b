"""`alerts tail`, `evaluate` and `run` under bad records, bad options, closed pipes and signals: one line and
exit status 2 for user errors, 141 for a reader of stdout that went away, 130 / 143 for Ctrl-C / SIGTERM, never
a traceback, and no simulation child left behind.

Every test runs the real CLI as a subprocess; the `alerts tail` ones use the real broker and a private topic
(``fixc...``, deleted afterwards).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import dg_env

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "distillguard.cli"]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")}
    out.update(extra)
    return out


def cli(*args: str, stdout: int | None = subprocess.PIPE, timeout: float = 120,
        environ: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, env=environ or env(), stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, check=False)


def start(*args: str, environ: dict[str, str] | None = None, stdout: int | None = subprocess.PIPE
          ) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, *args], cwd=REPO, env=environ or env(), stdout=stdout, stderr=subprocess.PIPE,
                            text=True)


def message_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def assert_clean_failure(res: subprocess.CompletedProcess[str], expected: str) -> None:
    assert res.returncode == 2, res.stderr
    no_traceback(res.stderr)
    lines = [line for line in message_lines(res.stderr) if not line.startswith(("usage:", " "))]  # argparse usage
    assert len(lines) == 1 and expected in lines[0], res.stderr


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(x) for x in out.split()]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if text in line]


def wait_for_child(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        if kids:
            return kids[0]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError("the simulation child never started")


def gone_soon(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed at teardown whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


# ---------------------------------------------------------------------------------------------- alerts tail
def valid_alert(i: int, tenant: str = "acme", **extra: object) -> dict:
    a = {"alert_id": f"c-{i}", "schema_version": 1, "kind": "tenant", "status": "open", "severity": "high",
         "score": 0.9, "detected_at": "2026-06-25T11:32:00.000Z", "first_seen": "2026-06-25T11:00:00.000Z",
         "window_start": "2026-06-25T11:25:00.000Z", "window_end": "2026-06-25T11:30:00.000Z",
         "reasons": [{"signal": "cot_share", "value": 0.97, "baseline": 0.05, "weight": 0.4, "text": "t"}],
         "evidence": [f"ev-{i}"], "detector_version": "test", "tenant_id": tenant}
    a.update(extra)
    return a


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A private one-partition alert topic ``fixc...`` and the env that points `alerts tail` at it."""
    from kafka.admin import KafkaAdminClient, NewTopic

    prefix = f"fixc{uuid.uuid4().hex[:10]}"
    name = f"{prefix}.alerts"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name, dg_env(prefix, kafka_bootstrap)
    finally:
        try:
            admin.delete_topics([name])
        finally:
            admin.close()


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for v in values:
            producer.send(topic, value=v)
        producer.flush()
    finally:
        producer.close()


BAD_RECORDS = [b"[1,2]", b'"str"', b'{"severity":["x"]}', b"{not json", b"42", b'{"tenant_ids":"acme"}',
               b'{"kind":{"a":1}}', b'{"tenant_id":["acme"]}']


@pytest.mark.kafka
@pytest.mark.parametrize("as_json", [False, True])
def test_tail_skips_records_that_are_not_alerts_and_warns_once_each(topic, as_json: bool) -> None:
    name, environ = topic
    good = [valid_alert(1), valid_alert(2, kind="cluster", tenant_ids=["acme", "x"], cluster_id="k")]
    # reasons are no filtered field: the readable line cannot show this one, --json passes it on
    unrenderable = valid_alert(3, reasons=[1])
    values = [BAD_RECORDS[0], orjson.dumps(good[0]), *BAD_RECORDS[1:], orjson.dumps(unrenderable), orjson.dumps(good[1])]
    produce(environ["DISTILLGUARD_BOOTSTRAP_SERVERS"], name, values)
    args = ["alerts", "tail", "--topic", name, "--from-beginning", "--idle-timeout", "3", *(["--json"] if as_json else [])]
    for _ in range(2):  # a restart from the beginning meets the same records and survives them again
        res = cli(*args, environ=environ)
        assert res.returncode == 0, res.stderr
        no_traceback(res.stderr)
        warnings = message_lines(res.stderr)
        bad_offsets = [0, *range(2, 2 + len(BAD_RECORDS) - 1)] + ([] if as_json else [len(values) - 2])
        assert len(warnings) == len(bad_offsets), res.stderr
        for line, offset in zip(warnings, bad_offsets, strict=True):
            assert f"partition 0 offset {offset}:" in line and "warning" in line, line
        out = res.stdout.splitlines()
        if as_json:  # a forwarder gets only alert objects, byte for byte as on the topic
            assert out == [values[1].decode(), values[-2].decode(), values[-1].decode()]
        else:
            assert len(out) == 2 and "tenant acme" in out[0] and "cluster k 2 tenants: acme,x" in out[1]


@pytest.mark.kafka
def test_tail_filters_ignore_the_types_of_bad_records_but_match_good_ones(topic) -> None:
    name, environ = topic
    produce(environ["DISTILLGUARD_BOOTSTRAP_SERVERS"], name,
            [b'{"severity":["x"],"tenant_id":"acme"}', orjson.dumps(valid_alert(1)), orjson.dumps(valid_alert(2, "b"))])
    res = cli("alerts", "tail", "--topic", name, "--from-beginning", "--idle-timeout", "3", "--json",
              "--tenant", "acme", "--severity", "high", "--status", "open", "--kind", "tenant", environ=environ)
    assert res.returncode == 0, res.stderr
    assert [orjson.loads(x)["alert_id"] for x in res.stdout.splitlines()] == ["c-1"]
    assert len(message_lines(res.stderr)) == 1 and "offset 0: severity is not a string" in res.stderr


@pytest.mark.kafka
def test_tail_reader_of_stdout_gone_exits_quietly(topic) -> None:
    """``alerts tail --json | head -1``: the next write fails with EPIPE, the tail ends with 141, no traceback."""
    name, environ = topic
    produce(environ["DISTILLGUARD_BOOTSTRAP_SERVERS"], name, [orjson.dumps(valid_alert(i)) for i in range(5)])
    for mode in ([], ["--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            res = cli("alerts", "tail", "--topic", name, "--from-beginning", "--idle-timeout", "20", *mode,
                      stdout=write_end, environ=environ)
        finally:
            os.close(write_end)
        assert res.returncode == 141, res.stderr
        no_traceback(res.stderr)
        assert not message_lines(res.stderr)


@pytest.mark.kafka
def test_tail_idle_timeout_counts_from_the_last_alert_shown(topic, stopper) -> None:
    """Alerts the filters drop, arriving every 0.3 s, do not keep ``--tenant nobody --idle-timeout 2`` alive."""
    name, environ = topic
    from kafka import KafkaProducer

    stop = threading.Event()
    producer = KafkaProducer(bootstrap_servers=environ["DISTILLGUARD_BOOTSTRAP_SERVERS"])

    def feed() -> None:
        i = 0
        while not stop.wait(0.3):
            producer.send(name, value=orjson.dumps(valid_alert(i, tenant="someone-else")))
            producer.flush()
            i += 1

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        proc = start("alerts", "tail", "--topic", name, "--from-beginning", "--tenant", "nobody", "--idle-timeout", "2",
                     environ=environ)
        stopper.append(proc)
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
        assert proc.returncode == 0, err
        assert out == "" and took < 15, f"ran {took:.1f} s while the producer kept appending"
        assert not stop.is_set() and feeder.is_alive(), "the producer was still appending when the tail stopped"

        # an alert that passes the filters resets the timer: with matching alerts every 0.3 s it keeps going
        proc = start("alerts", "tail", "--topic", name, "--tenant", "someone-else", "--idle-timeout", "2",
                     "--max", "15", "--json", environ=environ)
        stopper.append(proc)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(out.splitlines()) == 15, "stopped by --max, not by the idle timeout"
    finally:
        stop.set()
        feeder.join(10)
        producer.close()


@pytest.mark.parametrize(("option", "value"), [
    ("--max", "0"), ("--max", "-1"), ("--max", "x"), ("--idle-timeout", "0"), ("--idle-timeout", "-1"),
    ("--idle-timeout", "nan"), ("--idle-timeout", "inf"),
])
def test_tail_rejects_invalid_max_and_idle_timeout_before_the_broker(option: str, value: str) -> None:
    started = time.monotonic()
    res = cli("alerts", "tail", option, value, environ=env(DISTILLGUARD_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    assert_clean_failure(res, f"argument {option}: must")
    assert "cannot connect" not in res.stderr and time.monotonic() - started < 30


@pytest.mark.kafka
def test_tail_max_stops_after_that_many_alerts(topic) -> None:
    name, environ = topic
    produce(environ["DISTILLGUARD_BOOTSTRAP_SERVERS"], name, [orjson.dumps(valid_alert(i)) for i in range(4)])
    res = cli("alerts", "tail", "--topic", name, "--from-beginning", "--json", "--max", "2", environ=environ,
              timeout=60)
    assert res.returncode == 0, res.stderr
    assert [orjson.loads(x)["alert_id"] for x in res.stdout.splitlines()] == ["c-0", "c-1"]


@pytest.mark.kafka
def test_tail_ctrl_c_while_following_exits_130(topic, stopper) -> None:
    name, environ = topic
    produce(environ["DISTILLGUARD_BOOTSTRAP_SERVERS"], name, [orjson.dumps(valid_alert(1))])
    proc = start("alerts", "tail", "--topic", name, "--from-beginning", "--json", environ=environ)
    stopper.append(proc)
    assert proc.stdout is not None
    assert orjson.loads(proc.stdout.readline())["alert_id"] == "c-1"  # connected and following
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    no_traceback(err)
    assert message_lines(err) == ["interrupted"]


def test_ctrl_c_while_the_cli_starts_is_interrupted_not_a_traceback(tmp_path: Path, stopper) -> None:
    """SIGINT at any moment of ``main`` (its imports of pydantic, the commands, ..., then the run) ends with 130
    and one line.

    The child does what the console script does (import ``main``, call it) and says when ``main`` is about to
    be called, so the signal lands in ``main`` at the chosen delay, not in the interpreter's own start-up."""
    launcher = ("import sys\nfrom distillguard.cli import main\nprint('ready', flush=True)\n"
                "sys.exit(main(sys.argv[1:]))")
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", launcher, "run", "--report", str(tmp_path / f"r{delay}")],
                                cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stopper.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        no_traceback(err)
        assert proc.returncode == 130, (delay, proc.returncode, err)
        assert message_lines(err) == ["interrupted"], err
    time.sleep(0.5)
    assert not processes_mentioning(str(tmp_path)), "no simulation child left behind"


# ---------------------------------------------------------------------------------------------- evaluate / run
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A small simulation (events + labels), the alerts `detect` finds in it, a regular file and an alert
    whose time is not one."""
    d = tmp_path_factory.mktemp("evaluate-c")
    res = cli("simulate", "--tenants", "2", "--intensity", "0.2", "--out", str(d / "events.jsonl"),
              "--labels", str(d / "labels.json"))
    assert res.returncode == 0, res.stderr
    res = cli("detect", "-i", str(d / "events.jsonl"), "-o", str(d / "alerts.jsonl"), "--no-progress")
    assert res.returncode == 0, res.stderr
    (d / "a-file").write_text("not a folder\n")
    (d / "bad-time.jsonl").write_text('{"alert_id": "a", "kind": "tenant", "status": "open", "detected_at": "noon"}\n')
    return {p.stem.replace("-", "_"): p for p in d.iterdir()}


def test_evaluate_still_scores_real_files(files: dict[str, Path], tmp_path: Path) -> None:
    for source in ("--alerts", "--events"):
        rep = tmp_path / source.strip("-")
        res = cli("evaluate", source, str(files[source.strip("-")]), "--labels", str(files["labels"]),
                  "--report", str(rep), "--no-progress")
        assert res.returncode == 0, res.stderr
        assert "evaluate: detected" in res.stderr and (rep / "summary.md").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--alerts", "nope.jsonl", "--labels", "{labels}"], "cannot read --alerts nope.jsonl: No such file or directory"),
    (["--alerts", "{alerts}", "--labels", "nope.json"], "cannot read --labels nope.json: No such file or directory"),
    (["--events", "nope.jsonl", "--labels", "{labels}"], "cannot read --events nope.jsonl: No such file or directory"),
    (["--events", "{events}", "--labels", "{events}"], "is not a labels file from `distillguard simulate --labels`"),
    (["--alerts", "{alerts}", "--labels", "{alerts}"], "is not a labels file from `distillguard simulate --labels`"),
    (["--alerts", "{events}", "--labels", "{labels}"], "line 1 is not an alert"),
    (["--alerts", "{labels}", "--labels", "{labels}"], "line 1 is not JSON"),
    (["--alerts", "{bad_time}", "--labels", "{labels}"], "line 1 is not an alert"),
    (["--alerts", "{alerts}", "--labels", "{labels}", "--report", "{a_file}"], "it exists and is not a folder"),
    (["--preset", "demo", "--report", "{a_file}"], "it exists and is not a folder"),
    (["--alerts", "{alerts}"], "distillguard evaluate: --alerts needs --labels"),
    (["--events", "{events}"], "distillguard evaluate: --events needs --labels"),
    (["--intensity", "0"], "argument --intensity: must be"),
    (["--intensity", "-1"], "argument --intensity: must be"),
    (["--days", "0"], "argument --days: must be"),
    (["--tenants", "-3"], "argument --tenants: must be"),
    (["--late-after", "nan"], "argument --late-after: must be"),
    (["--late-after", "0"], "argument --late-after: must be"),
])
def test_evaluate_user_errors_are_one_line_and_exit_2(files: dict[str, Path], tmp_path: Path, args: list[str],
                                                       expected: str) -> None:
    subst = {k: str(v) for k, v in files.items()}
    argv = [a.format(**subst) for a in args]
    if "--report" not in argv:
        argv += ["--report", str(tmp_path / "report")]
    started = time.monotonic()
    res = cli("evaluate", *argv, "--no-progress", cwd=tmp_path)
    assert_clean_failure(res, expected)
    assert time.monotonic() - started < 60, "checked before the run"
    assert not (tmp_path / "report" / "summary.md").exists()


@pytest.mark.parametrize("args", [["--report", "{a_file}"], ["--intensity", "0"], ["--days", "0"]])
def test_run_user_errors_are_one_line_and_exit_2(files: dict[str, Path], args: list[str]) -> None:
    res = cli("run", *[a.format(a_file=files["a_file"]) for a in args])
    assert_clean_failure(res, "it exists and is not a folder" if "--report" in args else "must be")


def test_run_reader_of_stdout_gone_exits_quietly(tmp_path: Path) -> None:
    """``distillguard run | head -1``: 141, nothing on stderr, no simulation child left behind."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = cli("run", "--report", str(tmp_path / "report"), stdout=write_end)
    finally:
        os.close(write_end)
    assert res.returncode == 141, res.stderr
    no_traceback(res.stderr)
    assert not message_lines(res.stderr)
    time.sleep(0.5)
    assert not processes_mentioning(str(tmp_path)), "no simulation child left behind"


@pytest.mark.parametrize(("sig", "status", "message"), [(signal.SIGTERM, 143, []),
                                                        (signal.SIGINT, 130, ["interrupted"])])
def test_evaluate_signal_stops_the_simulation_child(tmp_path: Path, stopper, sig: int, status: int,
                                                    message: list[str]) -> None:
    """The signal goes to the parent only (``kill PID``): it stops the child promptly and exits without a
    traceback; the child does not outlive it (it used to, blocked on a full queue, or the parent waited 30 s)."""
    proc = start("evaluate", "--preset", "suite", "--no-progress", "--report", str(tmp_path / "report"))
    stopper.append(proc)
    child = wait_for_child(proc)
    time.sleep(1.5)  # mid-run: the child generating, the queue filling
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert time.monotonic() - sent < 10, "stopped promptly"
    no_traceback(err)
    assert message_lines(err) == message
    assert gone_soon(child, 5), f"simulation child {child} outlived its parent"
    assert not processes_mentioning(str(tmp_path))


def test_evaluate_child_ends_when_its_parent_is_killed(tmp_path: Path, stopper) -> None:
    """SIGKILL leaves the parent no chance to clean up: the child notices its parent is gone and ends."""
    proc = start("evaluate", "--preset", "suite", "--no-progress", "--report", str(tmp_path / "report"))
    stopper.append(proc)
    child = wait_for_child(proc)
    time.sleep(1.5)
    proc.kill()
    proc.communicate(timeout=30)
    try:
        assert gone_soon(child, 15), f"simulation child {child} outlived its killed parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)

"""The commands' files as users hand them over: an output that is an input, gzip, a byte order mark, one
huge line, SIGTERM mid-run, and the feedback file's own rules. Real subprocesses over real files."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from detectors import synthetic as S
from tests.test_detectors_detect_cmd import REPO, detect, lines, write_input


# runs the CLI, then prints the process's peak resident memory (kB) from /proc
PEAK_RSS = ("import sys\nfrom distillguard.cli import main\nrc = main(sys.argv[1:])\n"
            "print(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')), file=sys.stderr)\n"
            "sys.exit(rc)")


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", *args], input=stdin, capture_output=True,
                          cwd=REPO, timeout=300, env=env)


def test_an_output_that_names_an_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    write_input(src)
    before = src.read_bytes()
    link = tmp_path / "link.jsonl"
    os.link(src, link)
    fb = tmp_path / "verdicts.jsonl"
    fb.write_bytes(b'{"alert_id": "t-1", "label": "false_positive", "tenant_id": "x"}\n')
    cases = [("--output", str(src)), ("--dead-letter", str(src)), ("--output", str(link)),
             ("--output", str(tmp_path / "." / "events.jsonl"))]
    for flag, path in cases:
        res = detect("--input", str(src), flag, path, "--no-progress")
        assert res.returncode == 2, (flag, path, res.stderr)
        assert res.stderr.decode().count("\n") == 1 and "is the same file as --input" in res.stderr.decode()
        assert src.read_bytes() == before
    res = detect("--input", str(src), "--feedback", str(fb), "--dead-letter", str(fb))
    assert res.returncode == 2 and b"--dead-letter" in res.stderr and b"--feedback" in res.stderr
    assert fb.read_bytes().startswith(b'{"alert_id": "t-1"')
    res = detect("--input", str(src), "--output", "/dev/null", "--dead-letter", "/dev/null")  # a device: no clash
    assert res.returncode == 0, res.stderr
    both = tmp_path / "new.jsonl"
    res = detect("--input", str(src), "--output", str(both), "--dead-letter", str(both))
    assert res.returncode == 2 and b"name the same file" in res.stderr and not both.exists()


def test_simulate_refuses_one_file_for_events_and_labels_and_writes_labels_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    res = cli("simulate", "--preset", "demo", "--days", "1", "--tenants", "3", "--out", str(out), "--labels", str(out))
    assert res.returncode == 2 and b"name the same file" in res.stderr and not out.exists()
    res = cli("simulate", "--preset", "demo", "--days", "1", "--tenants", "3", "--labels", "-")
    assert res.returncode == 2 and b"both name stdout" in res.stderr
    res = cli("simulate", "--preset", "demo", "--days", "1", "--tenants", "3", "--out", str(out), "--labels", "-")
    assert res.returncode == 0, res.stderr
    labels = orjson.loads(res.stdout)
    assert labels["counts"]["lines"] == len(out.read_bytes().splitlines())
    assert not (REPO / "-").exists() and not Path("-").exists()


def test_gzip_input_and_a_byte_order_mark_give_the_alerts_of_the_plain_file(tmp_path: Path) -> None:
    body = b"\n".join(lines(S.merge(S.extraction("x", hours=1), S.chat("c", hours=2)))) + b"\n"
    plain, bom, gz = tmp_path / "plain.jsonl", tmp_path / "bom.jsonl", tmp_path / "events.jsonl.gz"
    plain.write_bytes(body)
    bom.write_bytes(b"\xef\xbb\xbf" + body)
    gz.write_bytes(gzip.compress(body))
    runs = {}
    for src in (plain, bom, gz):
        out, dl = tmp_path / f"{src.name}.alerts", tmp_path / f"{src.name}.dl"
        res = detect("--input", str(src), "--output", str(out), "--dead-letter", str(dl), "--no-progress")
        assert res.returncode == 0, res.stderr
        assert dl.read_bytes() == b"", (src.name, dl.read_bytes()[:300])
        runs[src.name] = out.read_bytes()
    assert runs["plain.jsonl"] and runs["bom.jsonl"] == runs["plain.jsonl"] == runs["events.jsonl.gz"]
    res = detect("--input", "-", "--no-progress", stdin=gzip.compress(body))  # compressed stdin too
    assert res.returncode == 0 and res.stdout == runs["plain.jsonl"]
    # a pipe that delivers the first byte alone (peek sees one byte): still read as gzip
    slow = subprocess.run(f"(head -c1 {gz}; sleep 0.3; tail -c +2 {gz}) | {sys.executable} -m distillguard.cli detect "
                          "--input - --no-progress", shell=True, cwd=REPO, capture_output=True, timeout=300)
    assert slow.returncode == 0 and slow.stdout == runs["plain.jsonl"], slow.stderr[-500:]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(body)[: len(body) // 20])
    res = detect("--input", str(cut), "--output", str(tmp_path / "cut.alerts"), "--no-progress")
    assert res.returncode == 2 and b"corrupt gzip data" in res.stderr and b"Traceback" not in res.stderr


def test_one_huge_line_is_dead_lettered_without_being_read_whole(tmp_path: Path) -> None:
    good = lines(S.chat("c", hours=1))
    small, huge = tmp_path / "small.jsonl", tmp_path / "huge.jsonl"
    small.write_bytes(b"\n".join(good) + b"\n")
    filler = b'{"event_id": "' + b"x" * (120 << 20) + b'"}'  # one 120 MB line among valid events
    with huge.open("wb") as f:
        f.write(b"\n".join(good[:5]) + b"\n" + filler + b"\r\n" + b"\n".join(good[5:]) + b"\n")

    def peak_rss_mb(src: Path, dl: Path) -> float:
        """The command's own peak RSS (VmHWM of its process; ru_maxrss would also count what the forking test
        process held before exec)."""
        res = subprocess.run([sys.executable, "-c", PEAK_RSS, "detect", "--input", str(src), "--output",
                              str(tmp_path / "a.jsonl"), "--dead-letter", str(dl), "--no-progress"], cwd=REPO,
                             capture_output=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        return int(res.stderr.split(b"VmHWM:")[-1].split()[0]) / 1024

    base = peak_rss_mb(small, tmp_path / "small.dl")
    peak = peak_rss_mb(huge, tmp_path / "huge.dl")
    dead = [orjson.loads(x) for x in (tmp_path / "huge.dl").read_bytes().splitlines()]
    assert [d["line"] for d in dead] == [6]
    assert dead[0]["reason"] == f"oversized: {len(filler)} bytes > limit 262144"  # max_event_bytes
    assert peak < base + 40, f"peak RSS {peak:.0f} MB for a 120 MB line ({base:.0f} MB without it)"
    assert (tmp_path / "small.dl").read_bytes() == b""


def test_sigterm_removes_the_spill_directory(tmp_path: Path) -> None:
    src = tmp_path / "many.jsonl"
    src.write_bytes(b"\n".join(lines(S.merge(*[S.chat(f"t{i}", hours=3, seed=i) for i in range(150)]))) + b"\n")
    spill_parent = tmp_path / "tmp"
    spill_parent.mkdir()
    env = {**os.environ, "TMPDIR": str(spill_parent), "DISTILLGUARD_MAX_TENANTS_IN_MEMORY": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "distillguard.cli", "detect", "--input", str(src), "--output",
                             str(tmp_path / "a.jsonl"), "--no-progress"], cwd=REPO, env=env,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not any(spill_parent.iterdir()) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert any(spill_parent.iterdir()), "the run spilled tenants (a cap of 2)"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert list(spill_parent.iterdir()) == []


def test_feedback_file_rules(tmp_path: Path) -> None:
    fb = tmp_path / "verdicts.jsonl"
    fb.write_bytes(b'\xef\xbb\xbf{"alert_id": "t-1", "label": "false_positive", "tenant_id": "x"}\n'
                   b'{"alert_id": "t-2", "label": "nope", "tenant_id": "x"}\n{oops\n')
    res = cli("feedback", "--file", str(fb))  # stops at validation: nothing is sent, no broker needed
    err = res.stderr.decode()
    assert res.returncode == 2 and "line 1" not in err, err
    assert "line 2: label must be one of" in err and "line 3: invalid JSON (" in err
    assert err.index("line 2") < err.index("line 3")
    res = cli("feedback", "--file", str(fb), "--label", "false_positive", "--tenant", "x")
    assert res.returncode == 2 and b"either --file or a verdict by options" in res.stderr
    assert b"--label, --tenant" in res.stderr or b"--tenant, --label" in res.stderr

"""``distillguard detect`` as a real subprocess over real files and pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from detectors import synthetic as S
from schemas import load_schema

REPO = Path(__file__).resolve().parent.parent


def detect(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "distillguard.cli", "detect", *args], input=stdin,
                          capture_output=True, cwd=REPO, timeout=300)


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    out = []
    for e in events:
        e = {k: v for k, v in e.items() if k != "ts"}
        out.append(orjson.dumps(e))
    return out


def write_input(path: Path) -> list[bytes]:
    good = lines(S.merge(S.extraction("x", hours=1), S.chat("c", hours=2)))
    good[3] = orjson.dumps({**orjson.loads(good[3]), "prompt_text": "Think step by step: what is 2+2?"})
    bad = [b"{not json", b'{"event_id": "e", "timestamp": "2026-06-21T00:00:00Z"}',
           orjson.dumps({**orjson.loads(good[0]), "input_tokens": "many", "prompt_text": "SECRET PROMPT"})]
    body = good[:10] + [bad[0]] + good[10:20] + [b""] + [bad[1]] + good[20:] + [bad[2]]
    path.write_bytes(b"\n".join(body) + b"\n")
    return body


def test_detect_files_with_good_and_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    body = write_input(src)
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "bad.jsonl"
    res = detect("--input", str(src), "--output", str(out), "--dead-letter", str(dl))
    assert res.returncode == 0, res.stderr.decode()
    alerts = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [a["status"] for a in alerts if a.get("tenant_id") == "x"][:1] == ["open"]
    for a in alerts:
        jsonschema.validate(a, load_schema("alert"))
    dead = [orjson.loads(x) for x in dl.read_bytes().splitlines()]
    assert [d["line"] for d in dead] == [11, 23, len(body)]
    assert "invalid JSON" in dead[0]["reason"] and "tenant_id" in dead[1]["reason"] or "required" in dead[1]["reason"]
    assert "input_tokens" in dead[2]["reason"]
    for d in dead:
        jsonschema.validate(d, load_schema("dead_letter"))
        assert d["source_file"] == str(src)
    assert b"SECRET PROMPT" not in dl.read_bytes() and b"step by step" not in out.read_bytes()
    assert b"detect finished" in res.stderr and b"SECRET" not in res.stderr


def test_detect_stdin_to_stdout_matches_file_mode(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    write_input(src)
    out = tmp_path / "alerts.jsonl"
    assert detect("--input", str(src), "--output", str(out)).returncode == 0
    res = detect("--input", "-", "--output", "-", stdin=src.read_bytes())
    assert res.returncode == 0
    assert res.stdout == out.read_bytes() and res.stdout


def test_detect_unreadable_input_exits_nonzero_with_message(tmp_path: Path) -> None:
    res = detect("--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "a.jsonl"))
    assert res.returncode == 2
    # one human line, not a JSON log record of the same error beside it
    assert res.stderr.decode().strip().splitlines() == [
        f"distillguard detect: cannot read input {tmp_path / 'missing.jsonl'}: No such file or directory"]
    res = detect("--input", str(tmp_path), "--output", "-")  # a directory
    assert res.returncode == 2 and b"cannot read input" in res.stderr


def test_detect_feedback_file_suppresses_on_rerun(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(lines(S.extraction("x", hours=1))) + b"\n")
    out = tmp_path / "alerts.jsonl"
    assert detect("--input", str(src), "--output", str(out)).returncode == 0
    first = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    opened = next(a for a in first if a["status"] == "open")
    fb = tmp_path / "fb.jsonl"
    fb.write_bytes(orjson.dumps({"alert_id": opened["alert_id"], "label": "false_positive", "tenant_id": "x",
                                 "note": "internal red team"}) + b"\nnot json\n")
    res = detect("--input", str(src), "--output", str(out), "--feedback", str(fb))
    assert res.returncode == 0
    second = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert second[0]["alert_id"] == opened["alert_id"]
    assert second[1]["status"] == "resolved" and second[1]["reasons"][0]["signal"] == "analyst_feedback"
    assert [a["status"] for a in second].count("update") == 0


def test_detect_never_writes_the_rest_of_a_prompt_split_by_raw_newlines(tmp_path: Path) -> None:
    """A raw newline inside a prompt_text value splits the event over lines; the lines after the split are the
    rest of the prompt, which does not name the field. They are dead-lettered redacted (reason and line kept)
    until a line is an event again, and the secret is in no output."""
    good = lines(S.extraction("x", hours=1))
    split = (b'{"event_id":"k1","tenant_id":"x","prompt_text":"first \\' + b"\n" + b"SECRET-ONE middle\n"
             + b"\n" + b'SECRET-TWO rest","x":1}')
    broken_json = b"{not json"
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(good[:5] + [split] + good[5:8] + [broken_json] + good[8:]) + b"\n")
    out, dl = tmp_path / "alerts.jsonl", tmp_path / "bad.jsonl"
    res = detect("--input", str(src), "--output", str(out), "--dead-letter", str(dl))
    assert res.returncode == 0, res.stderr.decode()
    dead = [orjson.loads(x) for x in dl.read_bytes().splitlines()]
    for d in dead:
        jsonschema.validate(d, load_schema("dead_letter"))
    assert [d["line"] for d in dead] == [6, 7, 9, 13]
    assert all(d["reason"].startswith("invalid JSON") for d in dead)
    assert '"event_id":"k1"' in dead[0]["raw"] and dead[1]["raw"].startswith("[redacted: ")
    assert dead[2]["raw"].startswith("[redacted: ")
    assert dead[3]["raw"] == "{not json", "after a valid event, rejected lines are shown again"
    for path in tmp_path.iterdir():
        if path != src:
            assert b"SECRET" not in path.read_bytes(), path
    assert b"SECRET" not in res.stderr and b"SECRET" not in res.stdout
    assert b'"status":"open"' in out.read_bytes(), "the good events around it are detected as usual"

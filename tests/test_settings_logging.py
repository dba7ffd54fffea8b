"""Settings precedence, client configuration, dead-letter records and the logging privacy chain."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import orjson
import pytest

from distillguard.logs import configure_logging, get_logger
from distillguard.settings import Settings, SettingsError, load_settings
from schemas.dead_letter import dead_letter_record
from streams.clients import faust_broker_config, kafka_python_config


def test_env_overrides_toml_file_and_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "dg.toml"
    cfg.write_text('bootstrap_servers = "filehost:9092"\npartitions = 12\nalerts_topic = "from.file"\n')
    monkeypatch.setenv("DISTILLGUARD_CONFIG", str(cfg))
    monkeypatch.setenv("DISTILLGUARD_PARTITIONS", "3")
    s = Settings()
    assert s.bootstrap_servers == "filehost:9092" and s.alerts_topic == "from.file"
    assert s.partitions == 3, "environment wins over the file"
    assert s.events_topic == "llm.usage.events", "contract default"


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="not a readable file"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("env", "config", "message"), [
    ({"DISTILLGUARD_MAX_TENANTS_IN_MEMORY": "abc"}, None,
     "DISTILLGUARD_MAX_TENANTS_IN_MEMORY / 'max_tenants_in_memory' in the config file = 'abc': Input should be a valid integer"),
    ({"DISTILLGUARD_LOG_LEVEL": "verbose"}, None, "'log_level' in the config file = 'VERBOSE'"),
    ({"DISTILLGUARD_SASL_PASSWORD": "hunter2", "DISTILLGUARD_SASL_MECHANISM": "MD5"}, None, "'sasl_mechanism'"),
    ({}, "partitions = \n", "the config file is not valid TOML"),
    ({}, "partitons = 3\n", "unknown setting 'partitons' in the config file"),
])
def test_a_bad_setting_is_one_line_and_exit_2_for_every_command(tmp_path, env, config, message):
    """Whatever the command, a bad value, a typo in the file or a broken file is reported in one line (no
    traceback, secrets not echoed) with exit status 2."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")} | env
    args = [sys.executable, "-m", "distillguard.cli"]
    if config is not None:
        (tmp_path / "c.toml").write_text(config)
        args += ["--config", str(tmp_path / "c.toml")]
    for command in (["detect", "-i", os.devnull, "-o", str(tmp_path / "a.jsonl")], ["topics", "create"]):
        proc = subprocess.run(args + command, env=run_env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "hunter2" not in proc.stderr


def test_lower_case_log_level_is_accepted_and_a_misspelt_variable_is_pointed_out(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLGUARD_")}
    env |= {"DISTILLGUARD_LOG_LEVEL": "info", "DISTILLGUARD_PARTITON": "3"}
    proc = subprocess.run([sys.executable, "-m", "distillguard.cli", "detect", "-i", os.devnull, "-o",
                           str(tmp_path / "a.jsonl")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "warning: DISTILLGUARD_PARTITON is not a setting and is ignored" in proc.stderr


def test_unknown_setting_is_rejected(monkeypatch):
    with pytest.raises(ValueError):
        Settings(no_such_setting=1)


def test_sasl_settings_reach_both_clients_and_secret_stays_hidden(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    s = Settings(bootstrap_servers="a:1,b:2", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                 sasl_username="dg", sasl_password_file=pw)
    kp = kafka_python_config(s)
    assert kp["bootstrap_servers"] == ["a:1", "b:2"] and kp["sasl_plain_password"] == "s3cret-pw"
    fc = faust_broker_config(s)
    assert fc["broker"] == "kafka://a:1;kafka://b:2"
    assert fc["broker_credentials"].mechanism.value == "SCRAM-SHA-512"
    assert "s3cret" not in repr(Settings(sasl_password="s3cret-pw"))


def test_log_chain_drops_prompt_masks_secrets_escapes_control_chars():
    buf = io.StringIO()
    configure_logging("json", "INFO", stream=buf)
    get_logger("t").info("evt", tenant_id="evil\n{\"forged\": 1}", prompt_text="RAW PROMPT", sasl_password="pw")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1, "a newline in a tenant id cannot forge a second log line"
    rec = json.loads(lines[0])
    assert "prompt_text" not in rec and "RAW PROMPT" not in lines[0]
    assert rec["sasl_password"] == "***"
    assert rec["tenant_id"].startswith("evil\\x0a")


def test_dead_letter_record_strips_prompt_truncates_and_base64s_binary():
    raw = orjson.dumps({"a": [{"prompt_text": "SECRET"}], "prompt_text": "SECRET", "b": "x" * 100})
    rec = dead_letter_record(raw, "why", 50, source_topic="t", source_partition=1, source_offset=9)
    assert "SECRET" not in rec["raw"] and rec["truncated"] and len(rec["raw"]) == 50
    assert rec["source_offset"] == 9 and rec["reason"] == "why"
    broken = b'{"prompt_text": "SECRET stuff", "x": '
    assert b"SECRET" not in dead_letter_record(broken, "r", 1000)["raw"].encode()
    # what does not parse and still names the field in another spelling is redacted whole (the value's end is unknown)
    for hidden in (b"{'prompt_text': 'SECRET stuff'}", b'{"prompt\\u005ftext":"SECRET", "a":1',
                   b'"{\\"prompt_text\\": \\"SECRET\\"}"', b'["promptText", "SECRET"]'):
        rec = dead_letter_record(hidden, "r", 1000, source_topic="t", source_offset=4)
        assert "SECRET" not in rec["raw"] and rec["raw"].startswith("[redacted: ") and rec["source_offset"] == 4
    assert dead_letter_record(b'{"a": 1', "r", 1000)["raw"] == '{"a": 1', "input without the field is kept as it is"
    binary = dead_letter_record(b"\xff\xfe\x00", "r", 1000, source_file="f", line=3)
    assert binary["raw_encoding"] == "base64" and base64.b64decode(binary["raw"]) == b"\xff\xfe\x00"
    assert binary["line"] == 3

"""The guides in docs/guides/ work as written: their marked shell blocks run, in order, against the real broker.

Every ```sh block in a guide is preceded by a marker comment:

    <!-- docs-check -->                  run it; it must exit 0 (bash -euo pipefail)
    <!-- docs-check: timeout=N -->       same, allowing N seconds (default 60)
    <!-- docs-check: background -->      start it and leave it running (a worker); stopped with SIGTERM
                                         at the end of the guide, and it must not have died before
    <!-- docs-check: skip REASON -->     not run here (needs Docker, a production cluster, ...); its
                                         `distillguard ...` lines are still parsed by the real CLI parser
                                         and its `docker compose` lines checked against the compose file

Each guide runs in its own temporary directory with private topic names and consumer group set through
the DISTILLGUARD_* variables (so the guide text can use the defaults) and a free web port in
DISTILLGUARD_WEB_PORT; `distillguard` is the one of this checkout. `make docs-check` runs this file.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from distillguard.settings import ENV_PREFIX, Settings
from tests.conftest import dg_env

REPO = Path(__file__).resolve().parent.parent
GUIDES = REPO / "docs" / "guides"
GUIDE_NAMES = ["data-platform.md", "security.md", "operators.md"]
MARKER = re.compile(r"^<!--\s*docs-check(?::\s*(?P<opts>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w-]*)")
SHELL_INFOS = {"sh", "bash", "shell", "console"}

pytestmark = pytest.mark.kafka


@dataclass
class Block:
    guide: str
    line: int
    mode: str  # run | background | skip
    timeout: float
    code: str

    def where(self) -> str:
        return f"docs/guides/{self.guide}:{self.line}"


def blocks(name: str) -> list[Block]:
    """The shell blocks of one guide with their markers; an unmarked shell block is an error."""
    lines = (GUIDES / name).read_text().splitlines()
    out: list[Block] = []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if m:
            marker = (i + 1, m.group("opts") or "")
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
            indent = len(fence.group("indent"))
            if fence.group("info") in SHELL_INFOS:
                assert marker is not None, f"docs/guides/{name}:{i + 1}: shell block without a docs-check marker"
                opts = marker[1]
                mode = "skip" if opts.startswith("skip") else "background" if opts == "background" else "run"
                if mode == "skip":
                    assert opts[4:].strip(), f"docs/guides/{name}:{marker[0]}: say why the block is skipped"
                t = re.search(r"timeout=(\d+)", opts)
                code = "\n".join(line[indent:] for line in lines[i + 1:end])
                out.append(Block(name, i + 2, mode, float(t.group(1)) if t else 60.0, code))
            marker = None
            i = end
        elif line.strip():
            marker = None  # a marker applies to the block right after it
        i += 1
    return out


def commands(code: str) -> list[list[str]]:
    """Simple commands of a block as words: continuations joined, comments, redirections and VAR= dropped."""
    out: list[list[str]] = []
    for line in re.sub(r"\\\n\s*", " ", code).splitlines():
        line = re.sub(r"(?:(?<=\s)|^)\d*(?:>>?|<)&?\s*[^\s;|&]+", " ", line)  # redirections
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        cmd: list[str] = []
        words = list(lex) + [";"]
        i = 0
        while i < len(words):
            w = words[i]
            if set(w) <= set(";&|()"):
                if cmd:
                    out.append(cmd)
                cmd = []
            elif cmd or not re.fullmatch(r"[A-Za-z_]\w*=.*", w):
                cmd.append(w)
            i += 1
    return out


def check_static(block: Block) -> None:
    """`distillguard` lines parse with the real CLI; `docker compose` lines name real services and files."""
    from distillguard.cli import build_parser

    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    for words in commands(block.code):
        cmd = shlex.join(words)
        if words[:1] == ["distillguard"]:
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:
                if exc.code:
                    pytest.fail(f"{block.where()}: `{cmd}` does not parse")
        if words[:2] == ["docker", "compose"]:
            assert "-f" in words and words[words.index("-f") + 1] == "docker/docker-compose.yml", cmd
            for w in words[2:]:
                if not w.startswith("-") and w != "docker/docker-compose.yml" and "=" not in w and w not in {
                    "up", "down", "ps", "logs", "pull", "build", "restart", "stop", "exec", "run", "config"}:
                    assert w in compose["services"] or not w.isidentifier(), f"{block.where()}: unknown service {w}"
            for scale in re.findall(r"--scale (\w+)=", cmd):
                assert scale in compose["services"], cmd


def test_every_guide_has_checked_commands():
    for name in GUIDE_NAMES:
        found = blocks(name)
        assert sum(b.mode == "run" for b in found) >= 3, f"{name}: too few commands are run"
        for block in found:
            if block.mode == "skip":  # the others are run
                check_static(block)


def test_configuration_examples_in_the_guides_are_valid_settings():
    """Every ```toml block of a guide is a settings file the real Settings class accepts."""
    import tomllib

    found = 0
    for name in GUIDE_NAMES:
        for m in re.finditer(r"^```toml\n(.*?)^```", (GUIDES / name).read_text(), re.M | re.S):
            values = tomllib.loads(m.group(1))
            assert set(values) <= set(Settings.model_fields), f"{name}: unknown keys {set(values) - set(Settings.model_fields)}"
            Settings(**values)
            found += 1
    assert found


def _cleanup(bootstrap: str, prefix: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
        if groups:
            try:
                admin.delete_groups(groups)
            except Exception:  # noqa: BLE001 - a group still leaving is removed with the broker
                pass
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics)
    finally:
        admin.close()


_PORTS_GIVEN: set[int] = set()
_PORTS_LOCK = threading.Lock()


def _below_ephemeral_ports() -> tuple[int, int]:
    """A port range the kernel does not hand out as source ports of outgoing connections."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (max(1024, low - 12000), low - 2) if low > 3000 else (20000, 29998)


def _free_port_pair() -> int:
    """A port P with P+1 free as well (the guides start a second worker on the next port), distinct per guide.

    Taken below the ephemeral range: a port that is merely free now can become the source port of some
    outgoing connection (a Kafka client's) before the second worker binds it, minutes later.
    """
    import random

    low, high = _below_ephemeral_ports()
    for _ in range(200):
        port = random.randint(low, high)
        with _PORTS_LOCK:
            if {port, port + 1} & _PORTS_GIVEN:
                continue
            _PORTS_GIVEN.update({port, port + 1})
        try:
            import socket

            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", p))  # where the worker binds its web port
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def test_guide_commands_run_as_written(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The guides run side by side, each in its own sandbox: most of their time is waiting (start-up, idle timeouts)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(GUIDE_NAMES)) as pool:
        futures = {name: pool.submit(run_guide, name, kafka_bootstrap, tmp_path / name) for name in GUIDE_NAMES}
    failures = []
    for name, future in futures.items():
        try:
            future.result()
        except BaseException as exc:  # noqa: BLE001 - pytest.fail raises a BaseException; report every guide
            failures.append(f"{name}: {exc}")
    if failures:
        pytest.fail("\n\n".join(failures))


def run_guide(name: str, kafka_bootstrap: str, workdir: Path) -> None:
    """Run one guide's blocks in order in ``workdir`` against private topics; fail on the first failing block."""
    workdir.mkdir()
    tmp_path = workdir
    prefix = f"tg{uuid.uuid4().hex[:10]}"
    env = dg_env(prefix, kafka_bootstrap, DISTILLGUARD_WEB_PORT=str(_free_port_pair()))
    for field in Settings.model_fields:  # every topic a guide's command may write is private, whatever dg_env knows
        if field.endswith("_topic"):
            env.setdefault(f"{ENV_PREFIX}{field.upper()}", f"{prefix}.{field.removesuffix('_topic')}")
    env.pop("DISTILLGUARD_LOG_FORMAT")  # the guides run with the defaults a user has
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    background: list[tuple[Block, subprocess.Popen, Path]] = []
    try:
        for n, block in enumerate(blocks(name)):
            if block.mode == "skip":
                continue
            if block.mode == "background":
                log = tmp_path / f"background-{n}.log"
                with open(log, "wb") as fh:
                    proc = subprocess.Popen(["bash", "-c", block.code], cwd=tmp_path, env=env, stdout=fh,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                background.append((block, proc, log))
                continue
            started = time.monotonic()
            try:
                res = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                                     capture_output=True, timeout=block.timeout)
            except subprocess.TimeoutExpired as exc:
                logs = "\n".join(_tail(log) for _, _, log in background)
                pytest.fail(f"{block.where()}: still running after {block.timeout:.0f}s\n{block.code}\n"
                            f"stdout: {(exc.stdout or b'').decode()[-2000:]}\nbackground logs:\n{logs}")
            if res.returncode != 0:
                logs = "\n".join(_tail(log) for _, _, log in background)
                pytest.fail(f"{block.where()}: exit {res.returncode}\n{block.code}\nstdout:\n"
                            f"{res.stdout.decode()[-2000:]}\nstderr:\n{res.stderr.decode()[-3000:]}\n"
                            f"background logs:\n{logs}")
            print(f"{block.where()}: {time.monotonic() - started:.1f}s")  # shown with -s or on failure
            for bblock, proc, log in background:
                assert proc.poll() is None, f"{bblock.where()}: exited early ({proc.returncode}):\n{_tail(log)}"
    finally:
        for _, proc, _ in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for bblock, proc, log in background:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        _cleanup(kafka_bootstrap, prefix)

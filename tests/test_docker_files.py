"""There is no Docker engine here: parse the deployment files and check them against the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from distillguard.cli import build_parser
from distillguard.settings import ENV_PREFIX, Settings

DOCKER = Path(__file__).resolve().parent.parent / "docker"
REPO = DOCKER.parent


def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def dockerfile() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_every_distillguard_variable_in_compose_is_a_real_setting():
    fields = set(Settings.model_fields)
    services = compose()["services"]
    for name in ("topics", "worker"):
        env = services[name]["environment"]
        assert env, name
        for key, value in env.items():
            assert key.startswith(ENV_PREFIX), key
            field = key[len(ENV_PREFIX):].lower()
            assert field in fields, f"{name}: {key} is not a setting"
        Settings(**{k[len(ENV_PREFIX):].lower(): v for k, v in env.items()})  # values validate too


def test_compose_topics_match_the_contract_defaults_and_broker_service():
    services = compose()["services"]
    env = services["worker"]["environment"]
    defaults = Settings()
    for key in ("events_topic", "dlq_topic", "alerts_topic", "feedback_topic"):
        assert env[f"{ENV_PREFIX}{key.upper()}"] == getattr(defaults, key)
    host, port = env["DISTILLGUARD_BOOTSTRAP_SERVERS"].split(":")
    assert host in services and services[host]["image"].startswith("apache/kafka:")
    kafka_env = services[host]["environment"]
    assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]


def test_compose_commands_are_real_subcommands():
    parser = build_parser()
    for name in ("topics", "worker"):
        parser.parse_args(compose()["services"][name]["command"])


def test_kafka_image_version_matches_local_broker():
    script = (DOCKER / "kafka-local.sh").read_text()
    local = re.search(r'DG_KAFKA_VERSION="\$\{DG_KAFKA_VERSION:-([0-9.]+)\}"', script).group(1)
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{local}"


def test_dockerfile_runs_the_cli_and_exposes_the_web_port():
    rows = dockerfile()
    froms = [rest for word, rest in rows if word == "FROM"]
    assert froms and all(f.startswith("python:3.11") for f in froms)
    entry = [rest for word, rest in rows if word == "ENTRYPOINT"]
    assert entry == ['["distillguard"]']
    assert [rest for word, rest in rows if word == "CMD"] == ['["worker"]']
    port = str(Settings().web_port)
    assert [rest for word, rest in rows if word == "EXPOSE"] == [port]
    health = " ".join(rest for word, rest in rows if word == "HEALTHCHECK")
    # the port the worker really serves on: DISTILLGUARD_WEB_PORT when it is overridden, else the default
    assert "os.environ.get('DISTILLGUARD_WEB_PORT','" + port + "')" in health and "127.0.0.1:{p}/healthz" in health
    copied = {shlex.split(rest)[0] for word, rest in rows if word == "COPY" and not rest.startswith("--")}
    for package in ("distillguard", "streams", "detectors", "delivery", "schemas"):
        assert package in copied and (REPO / package / "__init__.py").exists()
    env = " ".join(rest for word, rest in rows if word == "ENV")
    for key in re.findall(r"(DISTILLGUARD_\w+)=", env):
        assert key[len(ENV_PREFIX):].lower() in Settings.model_fields


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    """The image is built from the repository root: without this the context uploads the virtualenv,
    the local broker's data and .git (gigabytes), though none of it reaches the image."""
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".kafka-local", ".git"} <= ignored
    copied = {shlex.split(rest)[0] for word, rest in dockerfile() if word == "COPY" and not rest.startswith("--")}
    assert not copied & ignored, "nothing the Dockerfile copies is ignored"


# --- Prometheus and Grafana ---------------------------------------------------------------------

PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
GRAFANA = DOCKER / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "distillguard.json"
PROMQL_WORDS = {  # functions, aggregations and keywords used in dashboards; anything else is a metric name
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "irate", "increase", "delta",
    "histogram_quantile", "clamp_min", "clamp_max", "abs", "time", "vector", "scalar", "by", "without",
    "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
}
CORE = ("distillguard_events", "distillguard_dead_letters", "distillguard_alerts", "distillguard_processing_seconds",
        "distillguard_consumer_lag", "distillguard_tenants_in_memory", "distillguard_checkpoint_age_seconds")
PROMETHEUS_TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query in the dashboard, rows included."""
    import json

    def walk(panels: list[dict]) -> list[tuple[str, str]]:
        out = []
        for panel in panels:
            out += [(panel["title"], t["expr"]) for t in panel.get("targets", [])]
            out += walk(panel.get("panels", []))
        return out

    return walk(json.loads(DASHBOARD.read_text())["panels"])


def promql_parts(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Metric names, label names in each metric's matchers, and grouping labels (by/without) of one query."""
    matchers: dict[str, set[str]] = {}
    for name, body in re.findall(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", expr):
        matchers.setdefault(name, set()).update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body))
    grouping = {label for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
                for label in re.findall(r"\w+", group)}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    names = {m.group(1) for m in re.finditer(r"([a-zA-Z_:][\w:]*)(\s*\()?", bare)
             if not m.group(2) and m.group(1) not in PROMQL_WORDS and not re.fullmatch(r"\d\w*", m.group(1))}
    unknown_functions = {m.group(1) for m in re.finditer(r"([a-zA-Z_:][\w:]*)\s*\(", bare)} - PROMQL_WORDS
    assert not unknown_functions, f"{expr}: add {unknown_functions} to PROMQL_WORDS if they are PromQL"
    return names, matchers, grouping


def scrape_job() -> dict:
    jobs = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    assert len(jobs) == 1
    return jobs[0]


def test_prometheus_scrapes_every_worker_replica_on_its_web_port():
    job, services = scrape_job(), compose()["services"]
    worker = services["worker"]
    port = int(worker["environment"]["DISTILLGUARD_WEB_PORT"])
    assert str(port) in [str(p) for p in worker["expose"]]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]  # DNS: one A record per replica, so --scale needs no config change
    assert sd["type"] == "A" and sd["port"] == port
    assert sd["names"] == ["worker"]
    assert "static_configs" not in job


def test_compose_mounts_point_at_files_that_exist():
    services = compose()["services"]
    named = set(compose().get("volumes") or {})
    mounts = 0
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), f"{name}: {source} does not exist"
                mounts += 1
            else:
                assert source in named, f"{name}: named volume {source} is not declared"
    assert mounts >= 3
    prom = services["prometheus"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    for image in (prom["image"], services["grafana"]["image"]):
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{image} is not pinned to a version"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard():
    services = compose()["services"]
    grafana = services["grafana"]
    targets = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert (DOCKER / targets["/etc/grafana/provisioning"]).resolve() == (GRAFANA / "provisioning").resolve()
    (ds,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"]).groups()
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "distillguard.yml").read_text())["providers"]
    dash_dir = provider["options"]["path"]
    assert (DOCKER / targets[dash_dir]).resolve() == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dash_dir}/{DASHBOARD.name}"
    import json

    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
        assert panel["targets"], panel["title"]


def exported_series(families: dict) -> dict[str, set[str]]:
    """Series names (``_total``, ``_bucket``, ...) of the worker's metric families, with their label names.

    Names come from each family's type in the exposition, so a labelled metric nothing has
    incremented yet still counts; its label names then come from its definition in streams.metrics.
    """
    from prometheus_client.metrics import MetricWrapperBase

    from streams import metrics

    declared = {m._name: set(m._labelnames) for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    out: dict[str, set[str]] = {}
    for family in families.values():
        if not family.name.startswith("distillguard_") or family.name.endswith("_created"):
            continue
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        if not family.samples:
            labels = declared.get(family.name, set())
        for suffix in suffixes[family.type]:
            out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


@pytest.mark.kafka  # a real worker on the local broker
def test_dashboard_queries_use_only_metrics_a_real_worker_exports(kafka_env, worker_factory):
    """Run a worker on real traffic with attacks and bad lines, scrape it, and check every query against it."""
    import subprocess
    import sys
    import time

    from prometheus_client.parser import text_string_to_metric_families

    sim = [sys.executable, "-m", "distillguard.cli", "simulate", "--preset", "demo", "--tenants", "4",
           "--volume", "0.2", "--intensity", "0.05", "--to", "kafka"]
    subprocess.run(sim, env=kafka_env, cwd=REPO, check=True, capture_output=True, timeout=120)
    worker = worker_factory(kafka_env)
    worker.wait_ready()
    families: dict = {}
    deadline = time.time() + 90
    while time.time() < deadline:  # until every metric has samples (lag appears on the worker's 5 s timer)
        _, body = worker.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        if all(families.get(n) and families[n].samples for n in CORE) and worker.metric("distillguard_alerts_total"):
            break
        time.sleep(1)
    assert all(families.get(n) and families[n].samples for n in CORE), sorted(families)
    exported = exported_series(families)

    job = scrape_job()["job_name"]
    used: set[str] = set()
    for title, expr in dashboard_targets():
        names, matchers, grouping = promql_parts(expr)
        assert names, f"{title}: no metric in {expr}"
        for name in names:
            if name == "up":  # Prometheus' own per-target series, for this scrape job only
                assert matchers.get("up") == {"job"} and f'job="{job}"' in expr, expr
                continue
            assert name in exported, f"{title}: {name} is not exported by the worker ({sorted(exported)})"
            labels = exported[name] | PROMETHEUS_TARGET_LABELS
            assert matchers.get(name, set()) <= labels, f"{title}: {matchers[name] - labels} not labels of {name}"
            assert grouping <= labels, f"{title}: grouping by {grouping - labels} in {expr}"
            used.add(name)
    # every family the worker exports is on the dashboard (the text format lists *_created as gauges of their own)
    for family in (n for n in families if n.startswith("distillguard_") and not n.endswith("_created")):
        assert any(u == family or u.startswith(family + "_") for u in used), f"{family} has no panel"

#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, combined broker+controller) for
# development and tests, run straight from the official Maven Central jars: no
# Docker, no Kafka tarball.
#
#   docker/kafka-local.sh start    resolve jars (first run only), format storage (first
#                                  run only), start the broker, wait until it answers
#                                  a metadata request. No-op if already running.
#   docker/kafka-local.sh stop     SIGTERM, wait, SIGKILL if needed. No-op if not running.
#   docker/kafka-local.sh status   exit 0 if running and accepting connections, else 1.
#   docker/kafka-local.sh reset    stop + delete $DG_KAFKA_HOME (data, logs, config).
#   docker/kafka-local.sh restart  stop + start.
#   docker/kafka-local.sh logs [N] print the last N (default 100) lines of the broker log.
#
# Environment (all optional):
#   DG_KAFKA_PORT            client (PLAINTEXT) listener port on 127.0.0.1   [19092]
#   DG_KAFKA_CONTROLLER_PORT KRaft controller listener port                  [DG_KAFKA_PORT+1]
#   DG_KAFKA_HOME            runtime dir: config/, data/, logs/, kafka.pid   [<repo>/.kafka-local]
#   DG_KAFKA_VERSION         org.apache.kafka:kafka_2.13 version             [4.0.2]
#   DG_KAFKA_CACHE           where jars are copied                           [${XDG_CACHE_HOME:-$HOME/.cache}/distillguard/kafka-<version>]
#   DG_KAFKA_HEAP_OPTS       broker JVM heap                                 [-Xms256m -Xmx768m]
#   DG_KAFKA_JVM_OPTS        extra broker JVM options                        []
#   DG_KAFKA_START_TIMEOUT   seconds to wait for the broker to answer        [90]
#   DG_KAFKA_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL    [30]
#   DG_KAFKA_PYTHON          python used for the readiness probe if it can import
#                            kafka (kafka-python); otherwise the probe uses
#                            org.apache.kafka.tools.TopicCommand from the jars  [python3]
#   DG_KAFKA_MVN             maven executable                                [mvn]
#   JAVA / JAVA_HOME         java executable (JAVA wins, then $JAVA_HOME/bin/java, then java)
#
# Hooks for extra listeners (e.g. SASL_SSL, not configured by default):
#   DG_KAFKA_EXTRA_LISTENERS   comma-separated listeners appended to listeners= and
#                              advertised.listeners=, e.g. "SASL_SSL://127.0.0.1:19094".
#                              The names SSL, SASL_PLAINTEXT and SASL_SSL are already in
#                              listener.security.protocol.map.
#   DG_KAFKA_EXTRA_PROPERTIES  path of a properties file appended verbatim to the generated
#                              server.properties (keystores, sasl.enabled.mechanisms,
#                              listener.name.sasl_ssl.*.sasl.jaas.config, ...).
#   DG_KAFKA_FORMAT_ARGS       extra arguments for the storage format (first start only),
#                              word-split, e.g. SCRAM users:
#                              "--add-scram SCRAM-SHA-512=[name=alice,password=...]"
#                              (no spaces inside one argument).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
KAFKA_CONF_DIR="$SCRIPT_DIR/kafka"

DG_KAFKA_VERSION="${DG_KAFKA_VERSION:-4.0.2}"
DG_KAFKA_PORT="${DG_KAFKA_PORT:-19092}"
DG_KAFKA_HOME="${DG_KAFKA_HOME:-$REPO_ROOT/.kafka-local}"
DG_KAFKA_CACHE="${DG_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/distillguard/kafka-$DG_KAFKA_VERSION}"
DG_KAFKA_HEAP_OPTS="${DG_KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
DG_KAFKA_JVM_OPTS="${DG_KAFKA_JVM_OPTS:-}"
DG_KAFKA_START_TIMEOUT="${DG_KAFKA_START_TIMEOUT:-90}"
DG_KAFKA_STOP_TIMEOUT="${DG_KAFKA_STOP_TIMEOUT:-30}"
DG_KAFKA_PYTHON="${DG_KAFKA_PYTHON:-python3}"
DG_KAFKA_MVN="${DG_KAFKA_MVN:-mvn}"
DG_KAFKA_EXTRA_LISTENERS="${DG_KAFKA_EXTRA_LISTENERS:-}"
DG_KAFKA_EXTRA_PROPERTIES="${DG_KAFKA_EXTRA_PROPERTIES:-}"
DG_KAFKA_FORMAT_ARGS="${DG_KAFKA_FORMAT_ARGS:-}"

HOST=127.0.0.1
LIBS_DIR="$DG_KAFKA_CACHE/libs"
CLASSPATH_FILE="$DG_KAFKA_CACHE/classpath.txt"
STORAGE_TOOL_FILE="$DG_KAFKA_CACHE/storage-tool-class.txt"
CONF_DIR="$DG_KAFKA_HOME/config"
DATA_DIR="$DG_KAFKA_HOME/data"
LOG_DIR="$DG_KAFKA_HOME/logs"
PID_FILE="$DG_KAFKA_HOME/kafka.pid"
SERVER_PROPS="$CONF_DIR/server.properties"
BROKER_OUT="$LOG_DIR/kafka.out"
PROBE_ERR="$LOG_DIR/probe.out"

if [[ -n "${JAVA:-}" ]]; then
    JAVA_BIN="$JAVA"
elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
    JAVA_BIN="$JAVA_HOME/bin/java"
else
    JAVA_BIN="java"
fi

log() { printf '[kafka-local] %s\n' "$*"; }
err() { printf '[kafka-local] ERROR: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

validate_env() {
    if ! is_uint "$DG_KAFKA_PORT" || ((DG_KAFKA_PORT < 1 || DG_KAFKA_PORT > 65534)); then
        die "DG_KAFKA_PORT must be a port number < 65535, got '$DG_KAFKA_PORT'"
    fi
    DG_KAFKA_CONTROLLER_PORT="${DG_KAFKA_CONTROLLER_PORT:-$((DG_KAFKA_PORT + 1))}"
    if ! is_uint "$DG_KAFKA_CONTROLLER_PORT" || ((DG_KAFKA_CONTROLLER_PORT < 1 || DG_KAFKA_CONTROLLER_PORT > 65535)); then
        die "DG_KAFKA_CONTROLLER_PORT must be a port number, got '$DG_KAFKA_CONTROLLER_PORT'"
    fi
    ((DG_KAFKA_CONTROLLER_PORT != DG_KAFKA_PORT)) \
        || die "DG_KAFKA_CONTROLLER_PORT must differ from DG_KAFKA_PORT"
    is_uint "$DG_KAFKA_START_TIMEOUT" || die "DG_KAFKA_START_TIMEOUT must be whole seconds"
    is_uint "$DG_KAFKA_STOP_TIMEOUT" || die "DG_KAFKA_STOP_TIMEOUT must be whole seconds"
    [[ -z "$DG_KAFKA_EXTRA_PROPERTIES" || -r "$DG_KAFKA_EXTRA_PROPERTIES" ]] \
        || die "DG_KAFKA_EXTRA_PROPERTIES=$DG_KAFKA_EXTRA_PROPERTIES is not a readable file"
}

# ---------------------------------------------------------------- process helpers

# pid of our broker if it is alive, else empty. A pid file whose process is gone
# (or whose pid now belongs to some other program) is stale and gets removed.
broker_pid() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && alive "$pid" && is_our_broker "$pid"; then
        echo "$pid"
        return 0
    fi
    log "removing stale pid file $PID_FILE (pid '${pid:-?}' is not a running broker)" >&2
    rm -f "$PID_FILE"
}

# kill -0 also succeeds for a zombie (exited, not yet reaped): look at /proc too.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state=""
    if [[ -r "/proc/$1/stat" ]]; then
        state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true)"
    fi
    [[ "$state" != Z ]]
}

is_our_broker() {
    local cmdline
    [[ -r "/proc/$1/cmdline" ]] || return 0 # no procfs: trust kill -0
    cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$SERVER_PROPS"* ]]
}

# true if something accepts TCP connections on 127.0.0.1:$1
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | head -n 3 || true
}

classpath() { cat "$CLASSPATH_FILE"; }

tail_logs() {
    local n="${1:-60}" f
    for f in "$BROKER_OUT" "$LOG_DIR/server.log"; do
        if [[ -s "$f" ]]; then
            printf '%s\n' "----- last $n lines of $f -----" >&2
            tail -n "$n" "$f" >&2 || true
        fi
    done
}

# ---------------------------------------------------------------- jars

resolve_jars() {
    if [[ -s "$CLASSPATH_FILE" && -s "$STORAGE_TOOL_FILE" ]]; then
        local first
        first="$(classpath | cut -d: -f1)"
        if [[ -f "$first" ]]; then
            return 0
        fi
        log "cached classpath points at missing jars, resolving again"
    fi
    command -v "$DG_KAFKA_MVN" >/dev/null 2>&1 \
        || die "'$DG_KAFKA_MVN' not found: Maven is needed once to fetch the Kafka jars (apt-get install maven)"
    log "resolving org.apache.kafka:kafka_2.13:$DG_KAFKA_VERSION from Maven Central into $LIBS_DIR (first run only)"
    mkdir -p "$DG_KAFKA_CACHE"
    local tmp="$DG_KAFKA_CACHE/libs.tmp.$$"
    rm -rf "$tmp"
    local mvn_log="$DG_KAFKA_CACHE/mvn.log"
    if ! "$DG_KAFKA_MVN" -B -Dstyle.color=never -f "$KAFKA_CONF_DIR/pom.xml" \
        "-Dkafka.version=$DG_KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp" \
        >"$mvn_log" 2>&1; then
        rm -rf "$tmp"
        grep -E 'ERROR|FAIL' "$mvn_log" | head -n 30 >&2 || tail -n 30 "$mvn_log" >&2
        die "maven could not resolve the Kafka $DG_KAFKA_VERSION jars (full log: $mvn_log)"
    fi
    [[ -f "$tmp/kafka_2.13-$DG_KAFKA_VERSION.jar" ]] \
        || { rm -rf "$tmp"; die "maven finished but kafka_2.13-$DG_KAFKA_VERSION.jar is missing"; }
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"

    # Which StorageTool does this version have? (Scala kafka.tools.StorageTool in 3.x/4.0,
    # org.apache.kafka.tools.StorageTool in some later versions.) Jar central directories
    # store entry names uncompressed, so grep finds them without unzip.
    local cls=""
    if grep -qa 'kafka/tools/StorageTool.class' "$LIBS_DIR/kafka_2.13-$DG_KAFKA_VERSION.jar" \
        && ! grep -qa 'org/apache/kafka/tools/StorageTool.class' "$LIBS_DIR/kafka_2.13-$DG_KAFKA_VERSION.jar"; then
        cls=kafka.tools.StorageTool
    elif grep -qa 'org/apache/kafka/tools/StorageTool.class' "$LIBS_DIR"/*.jar; then
        cls=org.apache.kafka.tools.StorageTool
    elif grep -qa 'kafka/tools/StorageTool.class' "$LIBS_DIR"/*.jar; then
        cls=kafka.tools.StorageTool
    else
        die "no StorageTool class found in the Kafka $DG_KAFKA_VERSION jars"
    fi
    echo "$cls" >"$STORAGE_TOOL_FILE"

    # Classpath file last: its presence means "cache complete".
    local jar cp=""
    for jar in "$LIBS_DIR"/*.jar; do
        cp="${cp:+$cp:}$jar"
    done
    printf '%s\n' "$cp" >"$CLASSPATH_FILE.tmp"
    mv "$CLASSPATH_FILE.tmp" "$CLASSPATH_FILE"
    log "cached $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)); StorageTool class: $cls"
}

# ---------------------------------------------------------------- config / storage

write_config() {
    mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
    local listeners="PLAINTEXT://$HOST:$DG_KAFKA_PORT,CONTROLLER://$HOST:$DG_KAFKA_CONTROLLER_PORT"
    local advertised="PLAINTEXT://$HOST:$DG_KAFKA_PORT"
    if [[ -n "$DG_KAFKA_EXTRA_LISTENERS" ]]; then
        listeners="$listeners,$DG_KAFKA_EXTRA_LISTENERS"
        advertised="$advertised,$DG_KAFKA_EXTRA_LISTENERS"
    fi
    local t
    t="$(<"$KAFKA_CONF_DIR/server.properties.template")"
    t="${t//@CONTROLLER_PORT@/$DG_KAFKA_CONTROLLER_PORT}"
    t="${t//@LISTENERS@/$listeners}"
    t="${t//@ADVERTISED_LISTENERS@/$advertised}"
    t="${t//@LOG_DIRS@/$DATA_DIR}"
    if [[ "$t" =~ @[A-Z_]+@ ]]; then
        die "unfilled placeholder ${BASH_REMATCH[0]} left in server.properties.template"
    fi
    {
        printf '%s\n' "$t"
        if [[ -n "$DG_KAFKA_EXTRA_PROPERTIES" ]]; then
            printf '\n############################# from %s #############################\n' "$DG_KAFKA_EXTRA_PROPERTIES"
            cat "$DG_KAFKA_EXTRA_PROPERTIES"
        fi
    } >"$SERVER_PROPS.tmp"
    mv "$SERVER_PROPS.tmp" "$SERVER_PROPS"
}

random_cluster_id() {
    # Kafka cluster ids are 16 random bytes, base64url without padding (22 chars).
    # Avoid a leading '-' (would look like a CLI flag).
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && { echo "$id"; return; }
    done
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cid cls
    cid="$(random_cluster_id)"
    cls="$(cat "$STORAGE_TOOL_FILE")"
    log "formatting $DATA_DIR (cluster id $cid)"
    local extra=()
    read -r -a extra <<<"$DG_KAFKA_FORMAT_ARGS" # split on spaces, no globbing ([...] is literal)
    if ! "$JAVA_BIN" -Xmx256m "-Dlog4j2.configurationFile=$KAFKA_CONF_DIR/tools-log4j2.xml" \
        -cp "$(classpath)" "$cls" format -t "$cid" -c "$SERVER_PROPS" --ignore-formatted \
        ${extra[@]+"${extra[@]}"} >"$LOG_DIR/format.out" 2>&1; then
        cat "$LOG_DIR/format.out" >&2 || true
        die "formatting the storage failed"
    fi
    echo "$cid" >"$DG_KAFKA_HOME/cluster.id"
}

# ---------------------------------------------------------------- readiness

PY_PROBE='
import sys
from kafka import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="kafka-local-probe",
                     request_timeout_ms=5000)
try:
    c = a.describe_cluster()
    if not c.get("brokers"):
        sys.exit("no brokers in metadata yet")
finally:
    a.close()
'

python_probe_available() {
    command -v "$DG_KAFKA_PYTHON" >/dev/null 2>&1 \
        && "$DG_KAFKA_PYTHON" -I -c 'import kafka' >/dev/null 2>&1
}

# one real metadata round trip against the client listener
metadata_ok() {
    if [[ "$PROBE" == python ]]; then
        "$DG_KAFKA_PYTHON" -I -c "$PY_PROBE" "$HOST:$DG_KAFKA_PORT" >"$PROBE_ERR" 2>&1
    else
        "$JAVA_BIN" -Xmx128m -XX:TieredStopAtLevel=1 \
            "-Dlog4j2.configurationFile=$KAFKA_CONF_DIR/tools-log4j2.xml" \
            -cp "$(classpath)" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$HOST:$DG_KAFKA_PORT" --list >"$PROBE_ERR" 2>&1
    fi
}

wait_ready() {
    local pid="$1" deadline=$((SECONDS + DG_KAFKA_START_TIMEOUT))
    if python_probe_available; then
        PROBE=python
    else
        PROBE=java
    fi
    log "waiting up to ${DG_KAFKA_START_TIMEOUT}s for the broker on $HOST:$DG_KAFKA_PORT (probe: $PROBE)"
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            tail_logs 40
            die "broker process $pid exited during startup (logs in $LOG_DIR)"
        fi
        if port_open "$DG_KAFKA_PORT" && metadata_ok; then
            return 0
        fi
        sleep 0.5
    done
    tail_logs 40
    if [[ -s "$PROBE_ERR" ]]; then
        printf '%s\n' "----- last readiness probe ($PROBE) output -----" >&2
        tail -n 15 "$PROBE_ERR" >&2 || true
    fi
    die "broker did not answer a metadata request within ${DG_KAFKA_START_TIMEOUT}s (still running as pid $pid; 'docker/kafka-local.sh stop' to kill it)"
}

# ---------------------------------------------------------------- commands

with_lock() {
    # Serialise start/stop/reset of the same DG_KAFKA_HOME (e.g. two test runs at once).
    mkdir -p "$DG_KAFKA_HOME"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$DG_KAFKA_HOME/.lock"
        flock -w $((DG_KAFKA_START_TIMEOUT + DG_KAFKA_STOP_TIMEOUT + 30)) 9 \
            || die "another kafka-local.sh holds $DG_KAFKA_HOME/.lock"
    fi
}

cmd_start() {
    local pid started
    started=$SECONDS
    pid="$(broker_pid)"
    if [[ -n "$pid" ]]; then
        log "already running (pid $pid) on $HOST:$DG_KAFKA_PORT"
        return 0
    fi
    command -v "$JAVA_BIN" >/dev/null 2>&1 || die "java not found (need Java 17+; set JAVA or JAVA_HOME)"

    local p
    for p in "$DG_KAFKA_PORT" "$DG_KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            err "port $HOST:$p is already in use by another process (not this script's broker):"
            port_owner "$p" >&2
            die "free the port or pick another one with DG_KAFKA_PORT=... (controller port = DG_KAFKA_PORT+1)"
        fi
    done

    resolve_jars
    write_config
    format_storage

    # Keep the previous run's console output for post-mortems.
    [[ -f "$BROKER_OUT" ]] && mv -f "$BROKER_OUT" "$BROKER_OUT.prev"
    log "starting Kafka $DG_KAFKA_VERSION (KRaft broker+controller) on $HOST:$DG_KAFKA_PORT, controller $HOST:$DG_KAFKA_CONTROLLER_PORT, home $DG_KAFKA_HOME"
    # setsid: own session, so the broker survives the shell/job that started it and is
    # not hit by its Ctrl-C. The inner shell writes its own pid, then execs java (same pid).
    # 9>&-: the broker must not inherit the lock fd (it would hold the lock for its lifetime).
    local setsid=()
    command -v setsid >/dev/null 2>&1 && setsid=(setsid)
    # shellcheck disable=SC2086,SC2016  # JVM opts are word-split on purpose; $$/$0/$@ belong to the inner shell
    "${setsid[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$JAVA_BIN" $DG_KAFKA_HEAP_OPTS \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$KAFKA_CONF_DIR/log4j2.xml" \
        "-Dkafka.logs.dir=$LOG_DIR" \
        $DG_KAFKA_JVM_OPTS \
        -cp "$(classpath)" kafka.Kafka "$SERVER_PROPS" \
        </dev/null >"$BROKER_OUT" 2>&1 9>&- &
    local launcher=$!

    # wait for the pid file written by the launched process
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || pid=$launcher
    echo "$pid" >"$PID_FILE"

    wait_ready "$pid"
    log "running (pid $pid) on $HOST:$DG_KAFKA_PORT; ready after $((SECONDS - started))s; logs: $LOG_DIR/server.log"
}

cmd_stop() {
    local pid
    pid="$(broker_pid)"
    if [[ -z "$pid" ]]; then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + DG_KAFKA_STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if alive "$pid"; then
        err "broker did not exit within ${DG_KAFKA_STOP_TIMEOUT}s of SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            alive "$pid" || break
            sleep 0.25
        done
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    pid="$(broker_pid)"
    if [[ -z "$pid" ]]; then
        log "not running (home $DG_KAFKA_HOME)"
        return 1
    fi
    if port_open "$DG_KAFKA_PORT"; then
        log "running (pid $pid) on $HOST:$DG_KAFKA_PORT (Kafka $DG_KAFKA_VERSION, home $DG_KAFKA_HOME)"
        return 0
    fi
    log "process $pid is alive but $HOST:$DG_KAFKA_PORT is not accepting connections (starting up or wedged)"
    return 1
}

cmd_reset() {
    cmd_stop
    case "$DG_KAFKA_HOME" in
        "" | "/" | "$HOME" | "$REPO_ROOT" | "$REPO_ROOT/")
            die "refusing to delete DG_KAFKA_HOME=$DG_KAFKA_HOME" ;;
    esac
    log "deleting $DG_KAFKA_HOME"
    rm -rf "$DG_KAFKA_HOME"
}

cmd_logs() {
    local n="${1:-100}"
    if [[ -f "$LOG_DIR/server.log" ]]; then
        tail -n "$n" "$LOG_DIR/server.log"
    else
        log "no log at $LOG_DIR/server.log"
    fi
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        start) validate_env; with_lock; cmd_start ;;
        stop) validate_env; with_lock; cmd_stop ;;
        restart) validate_env; with_lock; cmd_stop; cmd_start ;;
        status) validate_env; cmd_status ;;
        reset) validate_env; with_lock; cmd_reset ;;
        logs) cmd_logs "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"

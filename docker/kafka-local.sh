#!/usr/bin/env bash
# Run a single-node Kafka (KRaft, combined broker+controller) on 127.0.0.1 without Docker.
#
# The broker jars come from Maven Central through docker/kafka-local/pom.xml (cached in ~/.m2),
# and the broker runs as a plain `java -cp ... kafka.Kafka` in the background.
#
# Usage: docker/kafka-local.sh start|stop|status|restart|reset|fetch|tool <MainClass> [args...]
#
#   start    fetch jars if needed, format storage if needed, start the broker, wait until it
#            serves metadata, then print the bootstrap address (the only thing on stdout), e.g.
#              export KAFKA_BROKERS="$(docker/kafka-local.sh start)"
#            Already running: just prints the address.
#   stop     SIGTERM, wait up to TWINLOG_KAFKA_STOP_TIMEOUT seconds, then SIGKILL.
#   status   exit 0 if running and accepting connections, 1 if the process runs but the port is
#            closed, 3 if stopped.
#   restart  stop + start (data kept).
#   reset    stop + wipe data, config and logs (the fetched jars are kept).
#   fetch    only fetch the jars (e.g. to warm a CI cache).
#   tool     run one of Kafka's command-line classes on the broker's classpath, e.g.
#              docker/kafka-local.sh tool org.apache.kafka.tools.TopicCommand \
#                --bootstrap-server 127.0.0.1:19092 --list
#
# Environment (all optional):
#   TWINLOG_KAFKA_DIR              state folder (default: <repo>/.kafka)
#   TWINLOG_KAFKA_PORT             client (PLAINTEXT) port (default 19092)
#   TWINLOG_KAFKA_CONTROLLER_PORT  KRaft controller port (default client port + 1)
#   TWINLOG_KAFKA_VERSION          Kafka version from Maven Central (default 4.1.1)
#   TWINLOG_KAFKA_LOG4J2_VERSION   log4j2 version matching that Kafka line (default chosen from it)
#   TWINLOG_KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable (default false)
#   TWINLOG_KAFKA_HEAP_OPTS        broker heap (default "-Xms256m -Xmx1g")
#   TWINLOG_KAFKA_JVM_OPTS         extra JVM options for the broker
#   TWINLOG_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 60)
#   TWINLOG_KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   JAVA_HOME                      the JDK to use (else `java` on PATH); Kafka 4.x needs Java 17+
#
# Layout of the state folder:
#   libs/<version>/      broker classpath (copied from ~/.m2; kept by `reset`)
#   data/                KRaft metadata log and topic data (log.dirs)
#   config/              generated server.properties and log4j2 configs
#   broker.pid           pid of the broker JVM
#   broker.log           broker stdout/stderr (previous run: broker.log.1)

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka-local/pom.xml"

KAFKA_DIR="${TWINLOG_KAFKA_DIR:-$REPO_ROOT/.kafka}"
PORT="${TWINLOG_KAFKA_PORT:-19092}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "kafka-local: TWINLOG_KAFKA_PORT is not a number: '$PORT'" >&2; exit 2; }
CONTROLLER_PORT="${TWINLOG_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
KAFKA_VERSION="${TWINLOG_KAFKA_VERSION:-4.1.1}"
AUTO_CREATE_TOPICS="${TWINLOG_KAFKA_AUTO_CREATE_TOPICS:-false}"
HEAP_OPTS="${TWINLOG_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
EXTRA_JVM_OPTS="${TWINLOG_KAFKA_JVM_OPTS:-}"
START_TIMEOUT="${TWINLOG_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${TWINLOG_KAFKA_STOP_TIMEOUT:-30}"

case "$KAFKA_VERSION" in
  4.0.* | 4.1.*) default_log4j2=2.24.3 ;;
  *) default_log4j2=2.25.3 ;;
esac
LOG4J2_VERSION="${TWINLOG_KAFKA_LOG4J2_VERSION:-$default_log4j2}"

for p in "$PORT" "$CONTROLLER_PORT" "$START_TIMEOUT" "$STOP_TIMEOUT"; do
  [[ "$p" =~ ^[0-9]+$ ]] || { echo "kafka-local: not a number: '$p' (check the TWINLOG_KAFKA_* variables)" >&2; exit 2; }
done
[[ "$PORT" != "$CONTROLLER_PORT" ]] || { echo "kafka-local: client and controller ports must differ" >&2; exit 2; }

case "$KAFKA_VERSION" in
  4.*) ;;
  *) echo "kafka-local: only Kafka 4.x is supported (TWINLOG_KAFKA_VERSION=$KAFKA_VERSION)" >&2; exit 2 ;;
esac

# Make the state folder absolute: it ends up in server.properties and in -cp.
mkdir -p "$KAFKA_DIR"
KAFKA_DIR="$(cd "$KAFKA_DIR" && pwd)"
LIBS="$KAFKA_DIR/libs/$KAFKA_VERSION"
DATA="$KAFKA_DIR/data"
CONF="$KAFKA_DIR/config"
PID_FILE="$KAFKA_DIR/broker.pid"
LOG_FILE="$KAFKA_DIR/broker.log"
BOOTSTRAP="127.0.0.1:$PORT"

log() { echo "kafka-local: $*" >&2; }
die() { echo "kafka-local: error: $*" >&2; exit 1; }

now() { date +%s; }

# --- java ------------------------------------------------------------------------------------------

find_java() {
  if [[ -n "${JAVA_HOME:-}" ]]; then
    JAVA="$JAVA_HOME/bin/java"
    [[ -x "$JAVA" ]] || die "JAVA_HOME=$JAVA_HOME has no executable bin/java"
  else
    JAVA="$(command -v java || true)"
    [[ -n "$JAVA" ]] || die "no java: set JAVA_HOME or put java (17 or newer) on PATH"
  fi
  local version major
  version="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  major="${version%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$version" | cut -d. -f2)"
  if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
    die "$JAVA is Java $version; Kafka $KAFKA_VERSION needs Java 17 or newer (set JAVA_HOME)"
  fi
}

# --- jars ------------------------------------------------------------------------------------------

fetch_libs() {
  if [[ -f "$LIBS/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: Maven is needed to fetch the Kafka jars"
  log "fetching Kafka $KAFKA_VERSION jars through Maven (a first run downloads ~65 MB into ~/.m2)..."
  local tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$LIBS")"
  # A fresh folder each time: copy-dependencies never removes jars, and two versions in one
  # folder make a broken classpath.
  # Maven 3.8's quiet mode still prints bare colour resets: strip escapes and blank lines.
  local status=0
  mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -Dlog4j2.version="$LOG4J2_VERSION" \
    -Dkafka.libs="$tmp" </dev/null 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2 ||
    status=$?
  if ((status != 0)); then
    rm -rf "$tmp"
    die "Maven could not fetch Kafka $KAFKA_VERSION (see the output above)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "Maven copied no kafka_2.13 jar into $tmp"; }
  touch "$tmp/.complete"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "jars ready in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) jars)"
}

# --- config ----------------------------------------------------------------------------------------

write_config() {
  mkdir -p "$CONF" "$DATA"
  cat >"$CONF/server.properties" <<EOF
# Generated by docker/kafka-local.sh on each start; edits are overwritten.
process.roles=broker,controller
node.id=1
# Static quorum: formatted without --standalone.
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA

# One replica of everything.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests: no 3 s wait before a new group's first assignment; topics are created explicitly.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$AUTO_CREATE_TOPICS

# Small pools for a 2-core machine; faster cleaner passes for compaction tests.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.backoff.ms=1000
EOF

  # Broker: console (-> broker.log), warnings, plus the start/stop milestones and the
  # "Kafka Server started" line that wait_ready looks for.
  cat >"$CONF/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
# A few dozen lines per start/stop that show where a slow or stuck start is.
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
logger.lifecycle.name = kafka.server.BrokerLifecycleManager
logger.lifecycle.level = info
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = info
EOF

  # Admin client of the readiness probe: give up quickly, the probe loops itself.
  cat >"$CONF/probe-admin.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF

  # Command-line tools: warnings only, on stderr, so stdout carries only the tool's output.
  cat >"$CONF/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = ERR
EOF
}

# Runs a Kafka command-line class with a small heap.
run_tool() {
  local main="$1"
  shift
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$CONF/log4j2-tools.properties" \
    -cp "$LIBS/*" "$main" "$@"
}

cluster_id_of_data() {
  if [[ -f "$DATA/meta.properties" ]]; then
    sed -n 's/^cluster\.id=//p' "$DATA/meta.properties" | head -n1
  fi
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then
    CLUSTER_ID="$(cluster_id_of_data)"
    [[ -n "$CLUSTER_ID" ]] || die "$DATA/meta.properties has no cluster.id; run '$0 reset'"
    return 0
  fi
  # 16 random bytes, base64url without padding (22 characters); no leading '-'.
  CLUSTER_ID=""
  while [[ -z "$CLUSTER_ID" || "$CLUSTER_ID" == -* ]]; do
    CLUSTER_ID="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  log "formatting KRaft storage in $DATA (cluster id $CLUSTER_ID)"
  if ! run_tool kafka.tools.StorageTool format --cluster-id="$CLUSTER_ID" \
      --config "$CONF/server.properties" --ignore-formatted >>"$LOG_FILE" 2>&1; then
    tail -n 30 "$LOG_FILE" >&2
    die "formatting the storage failed (log: $LOG_FILE)"
  fi
}

# --- process ---------------------------------------------------------------------------------------

# Prints the pid of our broker if it is running, else nothing (and removes a stale pid file).
running_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kafka.Kafka $CONF/server.properties"; then
    echo "$pid"
  else
    rm -f "$PID_FILE"
  fi
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# SIGTERM (Kafka's shutdown hook does a controlled shutdown), wait, then SIGKILL.
kill_broker() {
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(now) + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker (pid $pid) still running after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
}

# Prints the error and the tail of the broker log; a broker that is still up is stopped, so a
# failed start leaves nothing running.
fail_start() {
  local msg="$1" pid="${2:-}"
  echo "kafka-local: error: $msg" >&2
  echo "---- last lines of $LOG_FILE ----" >&2
  tail -n 40 "$LOG_FILE" >&2 || true
  echo "---- end of $LOG_FILE ----" >&2
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping the half-started broker (pid $pid)"
    kill_broker "$pid"
  fi
  rm -f "$PID_FILE"
  exit 1
}

STARTED_LINE="Kafka Server started"

# Ready = the broker answers DescribeCluster on the client port with the cluster id we formatted
# (so a foreign process on the port is never mistaken for ours). The client port accepts TCP
# connections long before the broker serves, so first wait (cheaply) for the broker's own
# "Kafka Server started" log line, then prove it with one admin-client call from a separate JVM.
wait_ready() {
  local pid="$1" start deadline out gate_after=25
  start="$(now)"
  deadline=$((start + START_TIMEOUT))
  while :; do
    kill -0 "$pid" 2>/dev/null || fail_start "the broker (pid $pid) exited during startup"
    # The log line is the gate; if logging was changed and it never comes, probe anyway later.
    if grep -q "$STARTED_LINE" "$LOG_FILE" 2>/dev/null ||
        { (($(now) - start >= gate_after)) && port_open "$PORT"; }; then
      out="$(timeout 20 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="file:$CONF/log4j2-tools.properties" -cp "$LIBS/*" \
        org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "$BOOTSTRAP" \
        --config "$CONF/probe-admin.properties" 2>/dev/null 9>&- || true)"
      if [[ "$out" == *"Cluster ID: $CLUSTER_ID"* ]]; then
        return 0
      elif [[ "$out" == *"Cluster ID:"* ]]; then
        fail_start "$BOOTSTRAP answers with another cluster ($out), expected $CLUSTER_ID" "$pid"
      fi
    fi
    (($(now) < deadline)) || fail_start "the broker did not serve on $BOOTSTRAP within ${START_TIMEOUT}s (raise TWINLOG_KAFKA_START_TIMEOUT?)" "$pid"
    sleep 0.25
  done
}

lock() {
  exec 9>"$KAFKA_DIR/.lock"
  flock -w 120 9 || die "another kafka-local.sh holds $KAFKA_DIR/.lock"
}

cmd_start() {
  lock
  find_java
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    # Started and serving: nothing to do. Otherwise an earlier call may still be starting it.
    if ! { grep -q "$STARTED_LINE" "$LOG_FILE" 2>/dev/null && port_open "$PORT"; }; then
      CLUSTER_ID="$(cluster_id_of_data)"
      wait_ready "$pid"
    fi
    log "already running (pid $pid)"
    echo "$BOOTSTRAP"
    return 0
  fi
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "127.0.0.1:$p is already in use by another process (set TWINLOG_KAFKA_PORT / TWINLOG_KAFKA_CONTROLLER_PORT)"
    fi
  done

  local t0
  t0="$(date +%s.%N)"
  fetch_libs
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  : >"$LOG_FILE"
  write_config
  format_storage

  log "starting Kafka $KAFKA_VERSION (KRaft, broker+controller) on $BOOTSTRAP, controller 127.0.0.1:$CONTROLLER_PORT"
  local setsid=()
  command -v setsid >/dev/null && setsid=(setsid)
  # nohup/setsid exec the JVM, so $! is the JVM's own pid. 9>&-: the JVM must not inherit the
  # lock. $HEAP_OPTS and $EXTRA_JVM_OPTS are split on spaces on purpose.
  # shellcheck disable=SC2086
  "${setsid[@]}" nohup "$JAVA" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $EXTRA_JVM_OPTS \
    -Dlog4j2.configurationFile="file:$CONF/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$CONF/server.properties" \
    >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  wait_ready "$pid"
  log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (pid $pid, log $LOG_FILE)"
  echo "$BOOTSTRAP"
}

cmd_stop() {
  lock
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    log "not running"
    return 0
  fi
  log "stopping broker (pid $pid)..."
  kill_broker "$pid"
  log "stopped"
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "stopped"
    return 3
  fi
  if port_open "$PORT"; then
    echo "running (pid $pid) at $BOOTSTRAP"
    return 0
  fi
  echo "running (pid $pid) but $BOOTSTRAP is not accepting connections (starting or hung; log: $LOG_FILE)"
  return 1
}

cmd_reset() {
  cmd_stop
  log "wiping $DATA, $CONF and the broker logs (jars in $KAFKA_DIR/libs are kept)"
  rm -rf "$DATA" "$CONF" "$LOG_FILE" "$LOG_FILE.1" "$PID_FILE"
}

cmd_tool() {
  [[ $# -ge 1 ]] || die "usage: $0 tool <MainClass> [args...]"
  find_java
  fetch_libs
  [[ -f "$CONF/log4j2-tools.properties" ]] || write_config
  run_tool "$@"
}

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop; cmd_start ;;
  reset) cmd_reset ;;
  fetch) find_java; fetch_libs ;;
  tool) shift; cmd_tool "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac

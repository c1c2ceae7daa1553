#!/usr/bin/env bash
# Local stack without Docker: a binlog-enabled MariaDB of our own, Kafka (KRaft) and
# Apicurio Registry from Maven Central, plus the machine's PostgreSQL, Redis and RabbitMQ.
#
#   stack.sh up      start what is not running, wait for health (idempotent)
#   stack.sh down    stop what this script started (never the machine's own services)
#   stack.sh status  one line per component
#
# State and logs live in $STACK_DIR (default <repo>/.stack); logs in $STACK_DIR/logs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
LOGS="$STACK_DIR/logs"
CACHE="$HERE/.cache"

KAFKA_VERSION=3.9.1
APICURIO_VERSION=2.6.13.Final
MARIADB_PORT="${MARIADB_PORT:-3307}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
RABBIT_PORT="${RABBIT_PORT:-5672}"

mkdir -p "$LOGS"

say() { printf '[stack] %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# fail COMPONENT LOGFILE MESSAGE: print the message, the log tail and what to do; exit 1
fail() {
  printf '\n[stack] ERROR STACK_START_FAILED: %s: %s\n' "$1" "$3" >&2
  if [[ -n "$2" && -f "$2" ]]; then
    printf '[stack] last lines of %s:\n' "$2" >&2
    tail -n 40 "$2" >&2 || true
  fi
  printf '[stack] what to do: read %s, fix the cause, then run `npm run stack:up` again.\n' "${2:-the log}" >&2
  exit 1
}

# wait_for NAME LOG SECONDS CHECK...: poll CHECK until it succeeds
wait_for() {
  local name=$1 log=$2 secs=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then fail "$name" "$log" "not healthy after ${secs}s"; fi
    sleep 0.5
  done
}

ensure_java_artifacts() {
  if [[ -f "$CACHE/kafka-$KAFKA_VERSION/libs/kafka_2.13-$KAFKA_VERSION.jar" &&
        -f "$CACHE/apicurio-$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-runner.jar" ]]; then
    return
  fi
  command -v mvn >/dev/null || fail maven "" "Maven (mvn) is not installed; install it (apt-get install maven)"
  say "fetching Kafka $KAFKA_VERSION and Apicurio $APICURIO_VERSION from Maven Central (once)"
  mvn -q -B -f "$HERE/java/pom.xml" initialize >"$LOGS/maven-fetch.log" 2>&1 ||
    fail maven "$LOGS/maven-fetch.log" "could not fetch the Java components"
}

# ---- MariaDB (binlog source) -------------------------------------------------
MARIADB_DIR="$STACK_DIR/mariadb"
MARIADB_SOCK="$MARIADB_DIR/mysqld.sock"
mariadb_cli() { mariadb --protocol=socket -S "$MARIADB_SOCK" -uroot "$@"; }

mariadb_up() {
  if port_open "$MARIADB_PORT"; then say "mariadb already up on :$MARIADB_PORT"; return; fi
  command -v mariadbd >/dev/null || fail mariadb "" "mariadbd not found; install it (apt-get install mariadb-server)"
  if [[ ! -d "$MARIADB_DIR/data/mysql" ]]; then
    mkdir -p "$MARIADB_DIR/data" "$MARIADB_DIR/binlog"
    mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$MARIADB_DIR/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$LOGS/mariadb-install.log" 2>&1 ||
      fail mariadb "$LOGS/mariadb-install.log" "mariadb-install-db failed"
  fi
  # --no-defaults: the machine's /etc/mysql config belongs to the machine's instance.
  nohup mariadbd --no-defaults --user="$(id -un)" \
    --datadir="$MARIADB_DIR/data" --socket="$MARIADB_SOCK" --pid-file="$MARIADB_DIR/mariadbd.pid" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
    --server-id=1 --log-bin="$MARIADB_DIR/binlog/mariadb-bin" --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=FULL --expire-logs-days=7 \
    --gtid-strict-mode=ON --log-slave-updates=ON \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
    --max-connections=300 --log-error="$LOGS/mariadb.log" >>"$LOGS/mariadb.log" 2>&1 &
  wait_for mariadb "$LOGS/mariadb.log" 60 mariadb_cli -e 'SELECT 1'
  # The reader's account gets only what a replica and a snapshot need.
  mariadb_cli <<'SQL' >>"$LOGS/mariadb.log" 2>&1 || fail mariadb "$LOGS/mariadb.log" "could not create users"
CREATE USER IF NOT EXISTS 'cdc_reader'@'%' IDENTIFIED BY 'cdc_reader';
CREATE USER IF NOT EXISTS 'cdc_reader'@'localhost' IDENTIFIED BY 'cdc_reader';
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO 'cdc_reader'@'%';
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO 'cdc_reader'@'localhost';
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
  say "mariadb up on :$MARIADB_PORT (binlog ROW/FULL, datadir $MARIADB_DIR/data)"
}

mariadb_down() {
  [[ -f "$MARIADB_DIR/mariadbd.pid" ]] || return 0
  kill "$(cat "$MARIADB_DIR/mariadbd.pid")" 2>/dev/null || true
  for _ in $(seq 1 60); do port_open "$MARIADB_PORT" || break; sleep 0.5; done
  say "mariadb stopped"
}

# ---- Kafka (KRaft, single node) ----------------------------------------------
KAFKA_DIR="$STACK_DIR/kafka"
kafka_java() {
  local main=$1; shift
  java -Xms256m -Xmx${KAFKA_HEAP:-768m} -XX:+UseG1GC \
    -Dlog4j.configuration="file:$HERE/kafka/log4j.properties" \
    -cp "$CACHE/kafka-$KAFKA_VERSION/libs/*" "$main" "$@"
}

kafka_up() {
  if port_open "$KAFKA_PORT"; then say "kafka already up on :$KAFKA_PORT"; return; fi
  mkdir -p "$KAFKA_DIR/data"
  sed -e "s#@DATA@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#g" \
      -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      "$HERE/kafka/server.properties" >"$KAFKA_DIR/server.properties"
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka-format.log")"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
      >>"$LOGS/kafka-format.log" 2>&1 || fail kafka "$LOGS/kafka-format.log" "could not format the KRaft storage"
  fi
  kafka_java kafka.Kafka "$KAFKA_DIR/server.properties" >>"$LOGS/kafka.log" 2>&1 &
  wait_for kafka "$LOGS/kafka.log" 90 port_open "$KAFKA_PORT"
  say "kafka $KAFKA_VERSION up on :$KAFKA_PORT (KRaft)"
}

kafka_down() {
  pkill -f "kafka.Kafka $KAFKA_DIR/server.properties" || return 0
  for _ in $(seq 1 60); do port_open "$KAFKA_PORT" || break; sleep 0.5; done
  say "kafka stopped"
}

# ---- Apicurio Registry (Confluent-compatible API) -----------------------------
REGISTRY_DIR="$STACK_DIR/registry"
registry_ready() { curl -fsS "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects"; }

registry_up() {
  if registry_ready >/dev/null 2>&1; then say "schema registry already up on :$REGISTRY_PORT"; return; fi
  mkdir -p "$REGISTRY_DIR"
  # H2 on disk so schema ids survive a restart of the registry (Kafka keeps the records).
  REGISTRY_DATASOURCE_URL="jdbc:h2:file:$REGISTRY_DIR/registry;DB_CLOSE_ON_EXIT=FALSE" \
  nohup java -Xms64m -Xmx384m -Dcityshare.registry.dir="$REGISTRY_DIR" \
    -Dquarkus.http.port="$REGISTRY_PORT" -Dquarkus.http.host=127.0.0.1 \
    -jar "$CACHE/apicurio-$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-runner.jar" \
    >>"$LOGS/registry.log" 2>&1 &
  wait_for registry "$LOGS/registry.log" 90 registry_ready
  say "schema registry (Apicurio $APICURIO_VERSION) up at http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
}

registry_down() {
  pkill -f "cityshare.registry.dir=$REGISTRY_DIR" || return 0
  for _ in $(seq 1 60); do port_open "$REGISTRY_PORT" || break; sleep 0.5; done
  say "schema registry stopped"
}

# ---- Machine services: use them when running, else start or install them -----
apt_install() {
  say "installing $* from Debian packages"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >>"$LOGS/apt.log" 2>&1 ||
    fail "$1" "$LOGS/apt.log" "could not install $*"
}

postgres_up() {
  if port_open "$PG_PORT"; then say "postgresql up on :$PG_PORT"; return; fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local ver; ver="$(ls /etc/postgresql | sort -V | tail -1)"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >>"$LOGS/postgres.log" 2>&1 ||
    fail postgresql "$LOGS/postgres.log" "could not start PostgreSQL $ver"
  wait_for postgresql "$LOGS/postgres.log" 60 port_open "$PG_PORT"
  say "postgresql started on :$PG_PORT"
}

redis_up() {
  if port_open "$REDIS_PORT"; then say "redis up on :$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "$LOGS/redis.log" >>"$LOGS/redis.log" 2>&1 || fail redis "$LOGS/redis.log" "could not start Redis"
  wait_for redis "$LOGS/redis.log" 30 port_open "$REDIS_PORT"
  say "redis started on :$REDIS_PORT"
}

rabbitmq_up() {
  if port_open "$RABBIT_PORT"; then say "rabbitmq up on :$RABBIT_PORT"; return; fi
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  rabbitmq-server -detached >>"$LOGS/rabbitmq.log" 2>&1 || fail rabbitmq "$LOGS/rabbitmq.log" "could not start RabbitMQ"
  wait_for rabbitmq "$LOGS/rabbitmq.log" 120 port_open "$RABBIT_PORT"
  say "rabbitmq started on :$RABBIT_PORT"
}

status_line() { if port_open "$2"; then say "$1: up (:$2)"; else say "$1: down (:$2)"; fi; }

case "${1:-up}" in
  up)
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    ensure_java_artifacts
    postgres_up
    redis_up
    rabbitmq_up
    mariadb_up
    kafka_up
    registry_up
    say "stack ready; logs in $LOGS"
    ;;
  down)
    registry_down
    kafka_down
    mariadb_down
    ;;
  status)
    status_line mariadb "$MARIADB_PORT"; status_line kafka "$KAFKA_PORT"
    status_line registry "$REGISTRY_PORT"; status_line postgresql "$PG_PORT"
    status_line redis "$REDIS_PORT"; status_line rabbitmq "$RABBIT_PORT"
    ;;
  *) echo "usage: stack.sh up|down|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Local stack without Docker: a binlog-enabled MariaDB of our own, a secure Kafka 4 (KRaft)
# and Apicurio Registry 3 from Maven Central (its storage: a database on the machine's
# PostgreSQL; it runs on Java 21+), plus the machine's PostgreSQL, Redis and RabbitMQ.
#
#   stack.sh up [--brokers N]  start what is not running, wait for health (idempotent);
#                              N=1 (default) or 3 Kafka nodes; also KAFKA_NODES=N. The node
#                              count is kept from the last format when not given.
#   stack.sh down              stop what this script started (all Kafka nodes; never the
#                              machine's own services)
#   stack.sh status            one line per component (one per Kafka node)
#   stack.sh registry-up | registry-down   only the schema registry (REGISTRY_PORT, REGISTRY_DB:
#                              a second registry for tests, e.g. REGISTRY_PORT=18081
#                              REGISTRY_DB=t_registry STACK_DIR=/tmp/r2 stack.sh registry-up)
#   stack.sh kafka-up | kafka-down | kafka-status     only the Kafka nodes of $STACK_DIR
#   stack.sh kafka-users NAME [NAME...]   ensure SCRAM-SHA-512 and -256 credentials (one JVM)
#   stack.sh kafka-node kill|stop|start N kill -9 / stop / start one node (failover tests)
#
# Security (all local, generated once):
#   $TLS_DIR (default $STACK_DIR/tls): ca.crt + ca.key (the stack's CA), server.crt/.key
#     (SAN IP:127.0.0.1, DNS:localhost; Kafka client listener and MariaDB), kafka-node.crt/.key
#     (CN=kafka-node, client+server cert of the Kafka controller listener); keys are 0600.
#   Kafka: SASL_SSL only (SCRAM-SHA-512/-256), StandardAuthorizer, deny when no ACL. Super user
#     admin, password in $STACK_DIR/kafka/users/admin.password; every user's password in
#     $STACK_DIR/kafka/users/NAME.password (0600); Java client config for tools in
#     $STACK_DIR/kafka/admin.properties. Brokers talk to each other over SASL_SSL as admin.
#   MariaDB serves TLS with server.crt; cdc_reader must use TLS (REQUIRE SSL); root keeps the
#     socket, root@127.0.0.1 needs no TLS.
#
# Ports (env overrides): MariaDB 3307 (MARIADB_PORT); registry 8081 (REGISTRY_PORT; its database
#   REGISTRY_DB=cityshare_registry as REGISTRY_DB_USER=postgres on PG_PORT);
#   Kafka node n (1..N): SASL_SSL client port KAFKA_PORT+2(n-1) = 9092, 9094, 9096 and
#   controller (SSL, client cert required) KAFKA_CONTROLLER_PORT+2(n-1) = 9093, 9095, 9097.
#   A separate cluster next to the default one, for tests:
#     STACK_DIR=/tmp/k3 TLS_DIR=$PWD/.stack/tls KAFKA_USERS_DIR=$PWD/.stack/kafka/users \
#       KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_NODES=3 bash deploy/local/stack.sh kafka-up
#     (then kafka-users, kafka-node, kafka-down; KAFKA_USERS_DIR: same passwords as the default cluster)
#
# State and logs live in $STACK_DIR (default <repo>/.stack); logs in $STACK_DIR/logs
# (Kafka: kafka.log for one node, kafka-node-N.log for several).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
LOGS="$STACK_DIR/logs"
CACHE="$HERE/.cache"
TLS_DIR="${TLS_DIR:-$STACK_DIR/tls}"

KAFKA_VERSION=4.1.1
APICURIO_VERSION=3.3.3
MARIADB_PORT="${MARIADB_PORT:-3307}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
RABBIT_PORT="${RABBIT_PORT:-5672}"
# The Kafka users the demo pipeline needs (created by `up`).
KAFKA_DEMO_USERS=(control verifier reader-cityhub transformer sink-health sink-haidian department-health department-haidian)

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

# A random secret: 24 bytes, base64url, no padding, no newline.
random_secret() { openssl rand -base64 24 | tr '+/' '-_' | tr -d '=\n'; }

# ---- TLS: the stack's own CA and certificates (generated once) -----------------
TLS_NEW=0   # 1 when this run created certificates: running servers must pick them up
tls_ensure() {
  if [[ -f "$TLS_DIR/ca.crt" && -f "$TLS_DIR/server.pem" && -f "$TLS_DIR/kafka-node.pem" ]]; then return; fi
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$TLS_DIR"
  local log="$LOGS/tls.log"
  (
    set -e; umask 077; cd "$TLS_DIR"
    if [[ ! -f ca.crt || ! -f ca.key ]]; then
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
        -subj "/O=cityshare-local/CN=cityshare local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
      rm -f server.* kafka-node.*
    fi
    # issue NAME SUBJECT EXTENDED_KEY_USAGE
    issue() {
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=$3" >"$1.ext"
      openssl x509 -req -sha256 -days 825 -in "$1.csr" -CA ca.crt -CAkey ca.key \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$1.ext" -out "$1.crt"
      cat "$1.key" "$1.crt" >"$1.pem"   # PEM key store for Kafka: key + certificate
      rm -f "$1.csr" "$1.ext"
    }
    [[ -f server.pem ]] || issue server "/O=cityshare-local/CN=localhost" serverAuth
    [[ -f kafka-node.pem ]] || issue kafka-node "/O=cityshare-local/CN=kafka-node" serverAuth,clientAuth
    chmod 0644 ca.crt server.crt kafka-node.crt
    chmod 0600 ca.key server.key server.pem kafka-node.key kafka-node.pem
  ) >>"$log" 2>&1 || fail tls "$log" "could not create the local CA and certificates in $TLS_DIR"
  TLS_NEW=1
  say "local CA and certificates in $TLS_DIR (CA: $TLS_DIR/ca.crt)"
}

ensure_java_artifacts() {
  local libs="$CACHE/kafka-$KAFKA_VERSION/libs"
  if [[ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" && -f "$libs/kafka-tools-$KAFKA_VERSION.jar" &&
        -n "$(compgen -G "$libs/log4j-slf4j2-impl-*.jar")" &&
        -f "$CACHE/apicurio-$APICURIO_VERSION/quarkus-run.jar" ]]; then
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
  tls_ensure
  if port_open "$MARIADB_PORT"; then
    # An instance of ours started before TLS was configured: restart it with TLS.
    if [[ -f "$MARIADB_DIR/mariadbd.pid" ]] && mariadb_cli -e 'SELECT 1' >/dev/null 2>&1 &&
       [[ "$(mariadb_cli -N -e 'SELECT @@have_ssl')" != YES ]]; then
      say "mariadb runs without TLS; restarting it with the stack's certificate"
      mariadb_down
    elif ((TLS_NEW)) && mariadb_cli -e 'FLUSH SSL' >/dev/null 2>&1; then
      say "mariadb already up on :$MARIADB_PORT (reloaded the new certificates)"
    else
      say "mariadb already up on :$MARIADB_PORT"
    fi
  fi
  if ! port_open "$MARIADB_PORT"; then
    command -v mariadbd >/dev/null || fail mariadb "" "mariadbd not found; install it (apt-get install mariadb-server)"
    if [[ ! -d "$MARIADB_DIR/data/mysql" ]]; then
      mkdir -p "$MARIADB_DIR/data" "$MARIADB_DIR/binlog"
      mariadb-install-db --no-defaults --user="$(id -un)" --datadir="$MARIADB_DIR/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$LOGS/mariadb-install.log" 2>&1 ||
        fail mariadb "$LOGS/mariadb-install.log" "mariadb-install-db failed"
    fi
    # --no-defaults: the machine's /etc/mysql config belongs to the machine's instance.
    # TLS with the stack CA's server certificate (SAN 127.0.0.1/localhost).
    nohup mariadbd --no-defaults --user="$(id -un)" \
      --datadir="$MARIADB_DIR/data" --socket="$MARIADB_SOCK" --pid-file="$MARIADB_DIR/mariadbd.pid" \
      --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
      --ssl-ca="$TLS_DIR/ca.crt" --ssl-cert="$TLS_DIR/server.crt" --ssl-key="$TLS_DIR/server.key" \
      --server-id=1 --log-bin="$MARIADB_DIR/binlog/mariadb-bin" --binlog-format=ROW \
      --binlog-row-image=FULL --binlog-row-metadata=FULL --expire-logs-days=7 \
      --gtid-strict-mode=ON --log-slave-updates=ON \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 \
      --max-connections=300 --log-error="$LOGS/mariadb.log" >>"$LOGS/mariadb.log" 2>&1 &
    wait_for mariadb "$LOGS/mariadb.log" 60 mariadb_cli -e 'SELECT 1'
    say "mariadb up on :$MARIADB_PORT (TLS, binlog ROW/FULL, datadir $MARIADB_DIR/data)"
  fi
  # Not ours (no socket of ours): nothing to configure.
  mariadb_cli -e 'SELECT 1' >/dev/null 2>&1 || return 0
  # Every up, idempotent (also for a datadir from before TLS): the reader's account gets only
  # what a replica and a snapshot need, and only over TLS. root@127.0.0.1 (tests' DDL) and
  # root over the socket need no TLS.
  mariadb_cli <<'SQL' >>"$LOGS/mariadb.log" 2>&1 || fail mariadb "$LOGS/mariadb.log" "could not create users"
CREATE USER IF NOT EXISTS 'cdc_reader'@'%' IDENTIFIED BY 'cdc_reader';
CREATE USER IF NOT EXISTS 'cdc_reader'@'localhost' IDENTIFIED BY 'cdc_reader';
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO 'cdc_reader'@'%';
GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT, RELOAD ON *.* TO 'cdc_reader'@'localhost';
ALTER USER 'cdc_reader'@'%' REQUIRE SSL;
ALTER USER 'cdc_reader'@'localhost' REQUIRE SSL;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
}

mariadb_down() {
  [[ -f "$MARIADB_DIR/mariadbd.pid" ]] || return 0
  kill "$(cat "$MARIADB_DIR/mariadbd.pid")" 2>/dev/null || true
  for _ in $(seq 1 60); do port_open "$MARIADB_PORT" || break; sleep 0.5; done
  say "mariadb stopped"
}

# ---- Kafka 4 (KRaft; 1 or 3 combined broker+controller nodes; SASL_SSL) --------
KAFKA_DIR="$STACK_DIR/kafka"
# SCRAM passwords; a test cluster beside the default one may share the default users' files.
KAFKA_USERS_DIR="${KAFKA_USERS_DIR:-$KAFKA_DIR/users}"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
# Written after a successful format; a different (or missing) marker, e.g. the plaintext
# 3.9 broker's data, or another node count, makes `kafka-up` wipe and reformat (users/ stays).
KAFKA_LAYOUT_FILE="$KAFKA_DIR/layout"
layout_nodes() { sed -n 's/.* nodes=\([0-9]*\).*/\1/p' "$KAFKA_LAYOUT_FILE" 2>/dev/null || true; }
# Node count: --brokers / KAFKA_NODES, else the formatted cluster's, else 1.
KAFKA_NODES="${KAFKA_NODES:-$(layout_nodes)}"
KAFKA_NODES="${KAFKA_NODES:-1}"

kafka_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
kafka_cport() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
kafka_log() { if ((KAFKA_NODES == 1)); then echo "$LOGS/kafka.log"; else echo "$LOGS/kafka-node-$1.log"; fi; }
kafka_layout() { echo "kafka=4 security=sasl_ssl+scram+acl nodes=$KAFKA_NODES"; }
kafka_node_ids() { local d; for d in "$KAFKA_DIR"/node-*/; do [[ -d $d ]] && basename "$d" | sed 's/node-//'; done; }

# JVM for Kafka's classes (the nodes, StorageTool); heap from KAFKA_HEAP.
kafka_java() {
  local heap=$1 main=$2; shift 2
  java -Xms128m -Xmx"$heap" -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$main" "$@"
}

# PID of node N if it runs (checked against its command line, so a stale pid file is harmless).
kafka_node_pid() {
  local pidf="$KAFKA_DIR/node-$1/kafka.pid" pid
  [[ -f $pidf ]] || return 1
  pid="$(cat "$pidf")"
  [[ -n $pid ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "kafka.Kafka $KAFKA_DIR/node-$1/server.properties" &&
    echo "$pid"
}

kafka_validate_nodes() {
  [[ $KAFKA_NODES =~ ^[0-9]+$ ]] && ((KAFKA_NODES == 1 || KAFKA_NODES == 3)) ||
    fail kafka "" "KAFKA_NODES / --brokers must be 1 or 3 (got '$KAFKA_NODES')"
}

# Write node N's server.properties (0600: it holds the admin password) from the template.
kafka_node_config() {
  local n=$1 dir="$KAFKA_DIR/node-$1" voters="" i rf=1 isr=1
  for ((i = 1; i <= KAFKA_NODES; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(kafka_cport "$i")"; done
  if ((KAFKA_NODES > 1)); then rf=3; isr=2; fi
  mkdir -p "$dir/data"
  (umask 077; sed -e "s#@NODE_ID@#$n#" -e "s#@VOTERS@#$voters#" -e "s#@DATA@#$dir/data#" \
      -e "s#@PORT@#$(kafka_port "$n")#g" -e "s#@CONTROLLER_PORT@#$(kafka_cport "$n")#g" \
      -e "s#@TLS@#$TLS_DIR#g" -e "s#@RF@#$rf#g" -e "s#@MIN_ISR@#$isr#g" \
      -e "s#@ADMIN_PASSWORD@#$(cat "$KAFKA_USERS_DIR/admin.password")#" \
      "$HERE/kafka/server.properties" >"$dir/server.properties.tmp" && mv "$dir/server.properties.tmp" "$dir/server.properties")
}

# $KAFKA_DIR/admin.properties: Java client config (admin over SASL_SSL) for Kafka's tools.
kafka_admin_properties() {
  local servers="" i
  for ((i = 1; i <= KAFKA_NODES; i++)); do servers+="${servers:+,}127.0.0.1:$(kafka_port "$i")"; done
  (umask 077; cat >"$KAFKA_DIR/admin.properties.tmp" <<EOF
# Java client config for Kafka's tools as the super user admin (generated by stack.sh).
bootstrap.servers=$servers
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$KAFKA_USERS_DIR/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
EOF
  mv "$KAFKA_DIR/admin.properties.tmp" "$KAFKA_DIR/admin.properties")
}

# Stop every node of this $KAFKA_DIR (and the single 3.9 broker of the old layout).
kafka_stop_all() {
  local n pids=() pid
  for n in $(kafka_node_ids); do pid="$(kafka_node_pid "$n")" && pids+=("$pid"); done
  # Nodes whose pid file is gone, and the old layout's single plaintext broker.
  for pid in $(pgrep -f "kafka.Kafka $KAFKA_DIR/(node-[0-9]+/)?server.properties" || true); do
    [[ " ${pids[*]} " == *" $pid "* ]] || pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  say "kafka stopped (${#pids[@]} node(s))"
}

kafka_format() {
  local want; want="$(kafka_layout)"
  if [[ -f "$KAFKA_LAYOUT_FILE" && "$(cat "$KAFKA_LAYOUT_FILE")" == "$want" && -f "$KAFKA_USERS_DIR/admin.password" ]]; then
    return
  fi
  kafka_stop_all
  if [[ -d "$KAFKA_DIR" ]] && [[ -n "$(ls -A "$KAFKA_DIR" | grep -vx users || true)" ]]; then
    say "kafka: $KAFKA_DIR is from another layout (old plaintext broker or other node count); wiping and reformatting (users/ kept)"
    find "$KAFKA_DIR" -mindepth 1 -maxdepth 1 ! -name users -exec rm -rf {} +
  fi
  mkdir -p "$KAFKA_USERS_DIR"; chmod 0700 "$KAFKA_USERS_DIR"
  [[ -f "$KAFKA_USERS_DIR/admin.password" ]] || (umask 077; random_secret >"$KAFKA_USERS_DIR/admin.password")
  local cid n pw pids=() log="$LOGS/kafka-format.log"
  # A cluster id is 16 random bytes, base64url (not starting with '-', like Kafka's own).
  cid="$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n')"
  while [[ $cid == -* ]]; do cid="$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n')"; done
  pw="$(cat "$KAFKA_USERS_DIR/admin.password")"
  : >"$log"
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    kafka_node_config "$n"
    # The super user admin exists from the first start (the brokers log in to each other as it).
    kafka_java 256m kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/node-$n/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$pw]" --add-scram "SCRAM-SHA-256=[name=admin,password=$pw]" \
      >>"$log" 2>&1 &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || fail kafka "$log" "could not format the KRaft storage"; done
  kafka_layout >"$KAFKA_LAYOUT_FILE"
  say "kafka: formatted $KAFKA_NODES node(s), cluster id $cid"
}

# Start node N in the background (config must exist); prints nothing.
kafka_node_launch() {
  local n=$1 log; log="$(kafka_log "$1")"
  local heap="${KAFKA_HEAP:-$( ((KAFKA_NODES == 1)) && echo 768m || echo 512m)}"
  printf '\n==== start %s ====\n' "$(date -Is)" >>"$log"
  nohup java -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/node-$n/server.properties" >>"$log" 2>&1 &
  echo $! >"$KAFKA_DIR/node-$n/kafka.pid"
}

# Node N has finished starting (its log says so since its last start) and still runs.
kafka_node_started() {
  local n=$1 log; log="$(kafka_log "$1")"
  kafka_node_pid "$n" >/dev/null || return 2
  awk '/^==== start /{s=0} /Kafka Server started/{s=1} END{exit !s}' "$log" && port_open "$(kafka_port "$n")"
}

kafka_wait_started() {
  local n=$1 log deadline=$((SECONDS + 90)) rc
  log="$(kafka_log "$n")"
  while :; do
    rc=0; kafka_node_started "$n" || rc=$?
    ((rc == 0)) && return 0
    ((rc == 2)) && fail kafka "$log" "kafka node $n exited during start"
    ((SECONDS > deadline)) && fail kafka "$log" "kafka node $n not started after 90s"
    sleep 0.5
  done
}

kafka_up() {
  kafka_validate_nodes
  tls_ensure
  ((TLS_NEW == 0)) || kafka_stop_all   # running nodes hold the old certificates
  kafka_format
  local n started=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    kafka_node_config "$n"
    if kafka_node_pid "$n" >/dev/null; then continue; fi
    if port_open "$(kafka_port "$n")"; then
      fail kafka "" "port $(kafka_port "$n") is taken by another process (not node $n of $KAFKA_DIR)"
    fi
    kafka_node_launch "$n"; started+=("$n")
  done
  kafka_admin_properties
  for n in "${started[@]}"; do kafka_wait_started "$n"; done
  local ports="" ; for ((n = 1; n <= KAFKA_NODES; n++)); do ports+="${ports:+,}:$(kafka_port "$n")"; done
  if ((${#started[@]})); then
    say "kafka $KAFKA_VERSION up: $KAFKA_NODES node(s), SASL_SSL on $ports (admin: $KAFKA_DIR/admin.properties)"
  else
    say "kafka already up: $KAFKA_NODES node(s), SASL_SSL on $ports"
  fi
}

# kafka-users NAME...: SCRAM-SHA-512 and -256 credentials with the stored (or a new) password.
kafka_users() {
  (($#)) || { echo "usage: stack.sh kafka-users NAME [NAME...]" >&2; exit 2; }
  local name log="$LOGS/kafka-users.log"
  for name in "$@"; do
    [[ $name =~ ^[a-z][a-z0-9._-]*$ ]] || { echo "[stack] bad Kafka user name '$name' (want ^[a-z][a-z0-9._-]*\$)" >&2; exit 2; }
  done
  [[ -f "$KAFKA_DIR/admin.properties" ]] || fail kafka "" "no $KAFKA_DIR/admin.properties; run stack.sh kafka-up first"
  mkdir -p "$KAFKA_USERS_DIR"; chmod 0700 "$KAFKA_USERS_DIR"
  for name in "$@"; do
    [[ -s "$KAFKA_USERS_DIR/$name.password" ]] || (umask 077; random_secret >"$KAFKA_USERS_DIR/$name.password")
  done
  printf '\n==== %s kafka-users %s ====\n' "$(date -Is)" "$*" >>"$log"
  java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$HERE/kafka/log4j2-tools.properties" \
    -cp "$KAFKA_LIBS/*" "$HERE/kafka/ScramUsers.java" "$KAFKA_DIR/admin.properties" "$KAFKA_USERS_DIR" "$@" \
    >>"$log" 2>&1 || fail kafka "$log" "could not create the SCRAM users $*"
  say "kafka users ready: $* (passwords in $KAFKA_USERS_DIR/NAME.password)"
}

kafka_demo_users() {
  local done_file="$KAFKA_DIR/demo-users.done" name missing=0
  for name in "${KAFKA_DEMO_USERS[@]}"; do [[ -s "$KAFKA_USERS_DIR/$name.password" ]] || missing=1; done
  if ((missing == 0)) && [[ -f $done_file && "$(cat "$done_file")" == "${KAFKA_DEMO_USERS[*]}" ]]; then return; fi
  kafka_users "${KAFKA_DEMO_USERS[@]}"
  echo "${KAFKA_DEMO_USERS[*]}" >"$done_file"
}

kafka_status() {
  local n ids; ids="$(kafka_node_ids)"
  [[ -n $ids ]] || { status_line kafka "$KAFKA_PORT"; return; }
  for n in $ids; do
    if kafka_node_pid "$n" >/dev/null && port_open "$(kafka_port "$n")"; then
      say "kafka node $n: up (SASL_SSL :$(kafka_port "$n"), controller :$(kafka_cport "$n"))"
    else
      say "kafka node $n: down (:$(kafka_port "$n"))"
    fi
  done
}

# kafka-node kill|stop|start N
kafka_node_cmd() {
  local action=${1:-} n=${2:-} pid
  [[ $action =~ ^(kill|stop|start)$ && $n =~ ^[0-9]+$ && -f "$KAFKA_DIR/node-$n/server.properties" ]] ||
    { echo "usage: stack.sh kafka-node kill|stop|start N   (N a node of $KAFKA_DIR)" >&2; exit 2; }
  case $action in
    kill)
      pid="$(kafka_node_pid "$n")" || { say "kafka node $n is not running"; return; }
      kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      say "kafka node $n killed (-9)" ;;
    stop)
      pid="$(kafka_node_pid "$n")" || { say "kafka node $n is not running"; return; }
      kill "$pid"; for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      say "kafka node $n stopped" ;;
    start)
      if kafka_node_pid "$n" >/dev/null; then say "kafka node $n already running"; return; fi
      kafka_node_config "$n"
      kafka_node_launch "$n"; kafka_wait_started "$n"
      say "kafka node $n started (SASL_SSL :$(kafka_port "$n"))" ;;
  esac
}

# ---- Apicurio Registry (Confluent-compatible API), storage in PostgreSQL --------
# Apicurio 3 keeps every artifact in the SQL database $REGISTRY_DB on the machine's PostgreSQL,
# so schema ids survive a restart (and a lost registry process loses nothing). It needs Java 21+.
REGISTRY_DIR="$STACK_DIR/registry"
REGISTRY_DB="${REGISTRY_DB:-cityshare_registry}"
REGISTRY_DB_USER="${REGISTRY_DB_USER:-postgres}"
REGISTRY_JAR="$CACHE/apicurio-$APICURIO_VERSION/quarkus-run.jar"
registry_url() { echo "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"; }
registry_ready() { curl -fsS "$(registry_url)/subjects"; }

# A java of version 21 or later: $REGISTRY_JAVA, the java on PATH, or the newest in /usr/lib/jvm.
java_major() { "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p'; }
registry_java() {
  local candidates=("$(command -v java || true)" /usr/lib/jvm/*/bin/java) candidate best="" best_major=0 major
  [[ -n ${REGISTRY_JAVA:-} ]] && candidates=("$REGISTRY_JAVA")
  for candidate in "${candidates[@]}"; do
    [[ -n $candidate && -x $candidate ]] || continue
    major="$(java_major "$candidate")"
    if [[ -n $major ]] && ((major >= 21 && major > best_major)); then best=$candidate; best_major=$major; fi
  done
  [[ -n $best ]] || fail registry "" "Apicurio Registry $APICURIO_VERSION needs Java 21 or later; none found (looked at ${REGISTRY_JAVA:-java on PATH and /usr/lib/jvm/*/bin/java}). Install one (e.g. apt-get install openjdk-21-jre-headless, or Temurin 21/25) or point REGISTRY_JAVA at its bin/java"
  echo "$best"
}

# PID of the registry of this $REGISTRY_DIR if it runs (checked against its command line).
registry_pid() {
  local pid
  for pid in $(pgrep -f -- "-Dcityshare.registry.dir=$REGISTRY_DIR( |$)" || true); do echo "$pid"; return 0; done
  return 1
}

registry_db_ensure() {
  local psql=(psql -h 127.0.0.1 -p "$PG_PORT" -U "$REGISTRY_DB_USER" -d postgres -v ON_ERROR_STOP=1 -qtA)
  command -v psql >/dev/null || fail registry "" "psql not found; install postgresql-client"
  if [[ "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$REGISTRY_DB'" 2>>"$LOGS/registry.log")" != 1 ]]; then
    "${psql[@]}" -c "CREATE DATABASE \"$REGISTRY_DB\"" >>"$LOGS/registry.log" 2>&1 ||
      fail registry "$LOGS/registry.log" "could not create the registry's database $REGISTRY_DB on PostgreSQL :$PG_PORT"
    say "registry storage: created database $REGISTRY_DB on PostgreSQL :$PG_PORT"
  fi
}

registry_up() {
  if registry_ready >/dev/null 2>&1; then
    # Only reported, never replaced: the registry may serve someone's running pipeline.
    if ! curl -fsS "http://127.0.0.1:$REGISTRY_PORT/apis/registry/v3/system/info" 2>/dev/null | grep -q "\"version\":\"$APICURIO_VERSION\""; then
      say "WARNING: the registry on :$REGISTRY_PORT is not Apicurio $APICURIO_VERSION on PostgreSQL (an older one of this stack kept its schemas in H2 and lost them on restart); replace it with \`npm run stack:down && npm run stack:up\`"
    fi
    say "schema registry already up on :$REGISTRY_PORT"
    return
  fi
  [[ -f $REGISTRY_JAR ]] || ensure_java_artifacts
  local java; java="$(registry_java)"
  postgres_up >/dev/null
  registry_db_ensure
  mkdir -p "$REGISTRY_DIR"
  printf '\n==== start %s (%s) ====\n' "$(date -Is)" "$java" >>"$LOGS/registry.log"
  # The management interface (health, metrics) on a free loopback port: it defaults to 0.0.0.0:9000.
  APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql \
  APICURIO_DATASOURCE_URL="jdbc:postgresql://127.0.0.1:$PG_PORT/$REGISTRY_DB" \
  APICURIO_DATASOURCE_USERNAME="$REGISTRY_DB_USER" APICURIO_DATASOURCE_PASSWORD="${REGISTRY_DB_PASSWORD:-}" \
  nohup "$java" -Xms64m -Xmx384m -XX:TieredStopAtLevel=1 -Dcityshare.registry.dir="$REGISTRY_DIR" \
    -Dquarkus.http.port="$REGISTRY_PORT" -Dquarkus.http.host=127.0.0.1 \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port=0 \
    -jar "$REGISTRY_JAR" >>"$LOGS/registry.log" 2>&1 &
  wait_for registry "$LOGS/registry.log" 90 registry_ready
  say "schema registry (Apicurio $APICURIO_VERSION, storage: PostgreSQL database $REGISTRY_DB) up at $(registry_url)"
}

registry_down() {
  local pid; pid="$(registry_pid)" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  say "schema registry stopped (its schemas stay in database $REGISTRY_DB)"
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

cmd="${1:-up}"; (($#)) && shift
if [[ $cmd == up || $cmd == kafka-up ]]; then
  while (($#)); do
    case $1 in
      --brokers) KAFKA_NODES="${2:-}"; shift 2 || { echo "--brokers needs a value" >&2; exit 2; } ;;
      --brokers=*) KAFKA_NODES="${1#--brokers=}"; shift ;;
      *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
  done
fi

case "$cmd" in
  up)
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    ensure_java_artifacts
    tls_ensure
    postgres_up
    redis_up
    rabbitmq_up
    mariadb_up
    kafka_up
    kafka_demo_users
    registry_up
    say "stack ready; logs in $LOGS"
    ;;
  down)
    registry_down
    kafka_stop_all
    mariadb_down
    ;;
  status)
    status_line mariadb "$MARIADB_PORT"; kafka_status
    status_line registry "$REGISTRY_PORT"; status_line postgresql "$PG_PORT"
    status_line redis "$REDIS_PORT"; status_line rabbitmq "$RABBIT_PORT"
    ;;
  kafka-up)
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    ensure_java_artifacts
    kafka_up
    ;;
  registry-up)
    registry_up ;;
  registry-down) registry_down ;;
  kafka-down) kafka_stop_all ;;
  kafka-status) kafka_status ;;
  kafka-users) kafka_users "$@" ;;
  kafka-node) kafka_node_cmd "$@" ;;
  *) echo "usage: stack.sh up [--brokers 1|3]|down|status|registry-up|registry-down|kafka-up|kafka-down|kafka-status|kafka-users NAME...|kafka-node kill|stop|start N" >&2; exit 2 ;;
esac

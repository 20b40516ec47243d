#!/usr/bin/env bash
# Replicated stores on loopback for the HA tests (test/integration/ha-postgres.test.ts, ha-redis.test.ts)
# and the `ha-replica` bench: their own instances, on their own ports and data dirs, so killing a primary
# never disturbs the shared test servers (DESIGN.md "Test services").
#
#   PostgreSQL: primary 127.0.0.1:5433, streaming replica 127.0.0.1:5434 (asynchronous, pg_basebackup -R),
#               user postgres, trust; data in $STATE_DIR/ha-pg/{a,b}.
#   Redis:      primary 127.0.0.1:6380, replica 127.0.0.1:6381, Sentinels 127.0.0.1:26379-26381 watching
#               master "baton-ha" (quorum 2, down-after 1000 ms); data in $STATE_DIR/ha-redis.
#
# Usage: ha-replicas.sh COMMAND
#   up            start both setups unless they are already up (idempotent; a broken setup is rebuilt)
#   pg-reset      rebuild PostgreSQL from scratch: fresh primary on 5433 and replica on 5434
#   pg-kill       kill -9 the PostgreSQL primary (postmaster and its backends)
#   pg-promote    promote the replica on 5434; returns once it accepts writes
#   redis-reset   rebuild Redis from scratch: primary 6380, replica 6381, three Sentinels
#   redis-kill    kill -9 the Redis server the Sentinels name as master; prints its port
#   redis-wait-failover OLD_PORT
#                 wait until the Sentinels name another master and it accepts writes; prints its port
#   down          stop everything this script started
# Every wait is bounded; a failure prints why and exits non-zero.
set -euo pipefail

STATE_DIR=${BATON_SERVICES_DIR:-/tmp/baton-services}
PG_DIR=$STATE_DIR/ha-pg
REDIS_DIR=$STATE_DIR/ha-redis
PG_PRIMARY=5433
PG_REPLICA=5434
REDIS_PORTS=(6380 6381)
SENTINEL_PORTS=(26379 26380 26381)
MASTER_NAME=baton-ha

up() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

fail() {
  echo "ha-replicas: $*" >&2
  exit 1
}

# Runs a check every 0.1 s until it succeeds; fails after SECONDS.
wait_for() { # what seconds command...
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "$what: not ready within $seconds s"
}

# --- PostgreSQL -----------------------------------------------------------------------------------------

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

# initdb and postgres refuse to run as root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

psql_at() { # port sql
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtqc "$2"
}

pg_start() { # dir port
  as_pg "$PG_BIN/pg_ctl" -D "$1" -l "$1.log" -w -t 30 -o "-p $2" start >/dev/null || fail "PostgreSQL on $2 did not start (see $1.log)"
}

pg_stop_dir() { # dir: stops a server left running in it, however it was left
  local dir=$1 pid
  [ -f "$dir/postmaster.pid" ] || return 0
  pid=$(head -n 1 "$dir/postmaster.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w -t 20 stop >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
  fi
}

pg_reset() {
  [ -n "$PG_BIN" ] || fail "no PostgreSQL binaries in /usr/lib/postgresql/*/bin"
  pg_stop_dir "$PG_DIR/a"
  pg_stop_dir "$PG_DIR/b"
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR" 2>/dev/null || true
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/a" -U postgres -A trust --no-sync >/dev/null || fail "initdb failed"
  cat >>"$PG_DIR/a/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
max_connections = 100
shared_buffers = 16MB
fsync = off
wal_level = replica
max_wal_senders = 5
hot_standby = on
CONF
  echo "host replication all 127.0.0.1/32 trust" >>"$PG_DIR/a/pg_hba.conf"
  pg_start "$PG_DIR/a" "$PG_PRIMARY"
  as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY" -U postgres -D "$PG_DIR/b" -R -X stream >/dev/null ||
    fail "pg_basebackup failed"
  pg_start "$PG_DIR/b" "$PG_REPLICA"
  wait_for "PostgreSQL replica streaming" 30 pg_streaming
  echo "ha-replicas: PostgreSQL primary 127.0.0.1:$PG_PRIMARY, replica 127.0.0.1:$PG_REPLICA"
}

pg_streaming() {
  [ "$(psql_at "$PG_PRIMARY" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] &&
    [ "$(psql_at "$PG_REPLICA" "SELECT pg_is_in_recovery()")" = t ]
}

pg_up() {
  up "$PG_PRIMARY" && up "$PG_REPLICA" && pg_streaming && return 0
  pg_reset
}

pg_kill() {
  [ -f "$PG_DIR/a/postmaster.pid" ] || fail "no PostgreSQL primary in $PG_DIR/a"
  local pid
  pid=$(head -n 1 "$PG_DIR/a/postmaster.pid")
  # The postmaster and every backend at once, as a crash of its machine would (no clean shutdown).
  kill -9 "$pid" $(pgrep -P "$pid" || true) 2>/dev/null || true
  wait_for "PostgreSQL primary gone" 10 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$PG_PRIMARY)"
}

pg_writable() {
  [ "$(psql_at "$PG_REPLICA" "SELECT pg_is_in_recovery()")" = f ]
}

pg_promote() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/b" -w -t 30 promote >/dev/null || fail "promote of 127.0.0.1:$PG_REPLICA failed"
  wait_for "promoted PostgreSQL accepting writes" 30 pg_writable
}

# --- Redis ----------------------------------------------------------------------------------------------

redis_at() { # port args...
  local port=$1
  shift
  redis-cli -h 127.0.0.1 -p "$port" "$@"
}

redis_stop_all() {
  local file pid
  for file in "$REDIS_DIR"/*.pid; do
    [ -f "$file" ] || continue
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  for port in "${REDIS_PORTS[@]}" "${SENTINEL_PORTS[@]}"; do
    wait_for "port $port free" 10 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port)"
  done
}

redis_server() { # port [replicaof-port]
  local port=$1
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$REDIS_DIR" --dbfilename "dump-$port.rdb" --pidfile "$REDIS_DIR/redis-$port.pid" \
    --logfile "$REDIS_DIR/redis-$port.log" ${2:+--replicaof 127.0.0.1 "$2"} >/dev/null
}

redis_sentinel() { # port
  local port=$1 conf=$REDIS_DIR/sentinel-$1.conf
  # Sentinel rewrites its file (the master it follows, its peers): one file each.
  cat >"$conf" <<CONF
bind 127.0.0.1
port $port
daemonize yes
pidfile $REDIS_DIR/sentinel-$port.pid
logfile $REDIS_DIR/sentinel-$port.log
dir $REDIS_DIR
sentinel monitor $MASTER_NAME 127.0.0.1 ${REDIS_PORTS[0]} 2
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 10000
sentinel parallel-syncs $MASTER_NAME 1
CONF
  redis-server "$conf" --sentinel >/dev/null
}

redis_master_port() { # from the first Sentinel that answers
  local port reply
  for port in "${SENTINEL_PORTS[@]}"; do
    reply=$(redis_at "$port" SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | sed -n 2p) || continue
    if [ -n "$reply" ]; then
      echo "$reply"
      return 0
    fi
  done
  return 1
}

redis_ready() { # every Sentinel knows the replica and the other two Sentinels
  local port
  for port in "${SENTINEL_PORTS[@]}"; do
    local info
    info=$(redis_at "$port" SENTINEL master "$MASTER_NAME" 2>/dev/null | tr '\n' ' ')
    [[ $info =~ num-slaves\ 1\  ]] || return 1
    [[ $info =~ num-other-sentinels\ 2\  ]] || return 1
  done
  [ "$(redis_at "${REDIS_PORTS[1]}" INFO replication | tr -d '\r' | sed -n 's/^master_link_status://p')" = up ]
}

redis_reset() {
  command -v redis-server >/dev/null || fail "redis-server is not installed"
  mkdir -p "$REDIS_DIR"
  redis_stop_all
  rm -rf "$REDIS_DIR"
  mkdir -p "$REDIS_DIR"
  redis_server "${REDIS_PORTS[0]}"
  wait_for "Redis primary" 15 redis_at "${REDIS_PORTS[0]}" PING
  redis_server "${REDIS_PORTS[1]}" "${REDIS_PORTS[0]}"
  for port in "${SENTINEL_PORTS[@]}"; do redis_sentinel "$port"; done
  wait_for "Redis replica and Sentinels" 30 redis_ready
  echo "ha-replicas: Redis primary 127.0.0.1:${REDIS_PORTS[0]}, replica 127.0.0.1:${REDIS_PORTS[1]}, Sentinels ${SENTINEL_PORTS[*]} (master $MASTER_NAME)"
}

redis_up() {
  local port
  for port in "${REDIS_PORTS[@]}" "${SENTINEL_PORTS[@]}"; do up "$port" || { redis_reset; return; }; done
  redis_ready || redis_reset
}

redis_kill() {
  local port pid
  port=$(redis_master_port) || fail "no Sentinel names a master"
  pid=$(cat "$REDIS_DIR/redis-$port.pid" 2>/dev/null) || fail "no pid file for the Redis master on $port"
  kill -9 "$pid"
  wait_for "Redis master gone" 10 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port)"
  echo "$port"
}

redis_failed_over() { # old-port
  local port
  port=$(redis_master_port) || return 1
  [ "$port" != "$1" ] && redis_at "$port" SET baton-ha-probe 1 | grep -q OK
}

redis_wait_failover() { # old-port
  wait_for "Sentinel failover away from $1" 60 redis_failed_over "$1"
  redis_master_port
}

case "${1:-up}" in
  up)
    pg_up
    redis_up
    ;;
  pg-reset) pg_reset ;;
  pg-kill) pg_kill ;;
  pg-promote) pg_promote ;;
  redis-reset) redis_reset ;;
  redis-kill) redis_kill ;;
  redis-wait-failover) redis_wait_failover "${2:?old master port}" ;;
  down)
    pg_stop_dir "$PG_DIR/a"
    pg_stop_dir "$PG_DIR/b"
    [ -d "$REDIS_DIR" ] && redis_stop_all
    ;;
  *) fail "unknown command ${1}; see the header of $0" ;;
esac

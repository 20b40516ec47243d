#!/usr/bin/env bash
# Makes every test backend reachable on loopback, idempotently and fast when all is up:
# installs etcd and ZooKeeper from Debian when missing and starts them, and restarts PostgreSQL, MariaDB,
# Redis or RabbitMQ when one is down (commands from DESIGN.md "Test services").
# Also installs Debian's Chromium for the dashboard's browser test (test/e2e) when missing.
# Ports: PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672, etcd 2379, ZooKeeper 2181.
set -euo pipefail

STATE_DIR=${BATON_SERVICES_DIR:-/tmp/baton-services}
mkdir -p "$STATE_DIR"

up() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_up() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if up 127.0.0.1 "$2"; then return 0; fi
    sleep 0.1
  done
  echo "services: $1 did not come up on 127.0.0.1:$2 within $3 s" >&2
  return 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=false
apt_install() {
  if ! $apt_updated; then
    as_root apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  up 127.0.0.1 5432 && return 0
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  wait_up PostgreSQL 5432 30
}

ensure_mariadb() {
  up 127.0.0.1 3306 && return 0
  echo "services: starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_up MariaDB 3306 30
}

ensure_redis() {
  up 127.0.0.1 6379 && return 0
  echo "services: starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_up Redis 6379 15
}

ensure_rabbitmq() {
  up 127.0.0.1 5672 && return 0
  # A node left with its app stopped (`rabbitmqctl stop_app`, e.g. by an interrupted broker-outage test)
  # still runs: start its app; `rabbitmq-server -detached` would refuse a second node.
  if as_root rabbitmqctl -q status >/dev/null 2>&1; then
    echo "services: starting the RabbitMQ app"
    as_root rabbitmqctl -q start_app
  else
    echo "services: starting RabbitMQ"
    as_root rabbitmq-server -detached
  fi
  wait_up RabbitMQ 5672 60
}

ensure_etcd() {
  up 127.0.0.1 2379 && return 0
  if ! command -v etcd >/dev/null; then
    echo "services: installing etcd-server from Debian"
    apt_install etcd-server
  fi
  echo "services: starting etcd on 127.0.0.1:2379"
  rm -rf "$STATE_DIR/etcd"
  nohup etcd --name baton-test --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster baton-test=http://127.0.0.1:2380 >"$STATE_DIR/etcd.log" 2>&1 &
  wait_up etcd 2379 30
}

ensure_zookeeper() {
  up 127.0.0.1 2181 && return 0
  if [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
    echo "services: installing zookeeper from Debian"
    apt_install zookeeper
  fi
  echo "services: starting ZooKeeper on 127.0.0.1:2181"
  rm -rf "$STATE_DIR/zookeeper"
  mkdir -p "$STATE_DIR/zookeeper/data"
  cat >"$STATE_DIR/zookeeper/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
initLimit=10
syncLimit=5
dataDir=$STATE_DIR/zookeeper/data
clientPort=2181
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
CFG
  ZOOCFGDIR="$STATE_DIR/zookeeper" ZOO_LOG_DIR="$STATE_DIR/zookeeper" \
    nohup /usr/share/zookeeper/bin/zkServer.sh start-foreground "$STATE_DIR/zookeeper/zoo.cfg" \
    >"$STATE_DIR/zookeeper.log" 2>&1 &
  wait_up ZooKeeper 2181 60
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  echo "services: installing chromium from Debian (for test/e2e)"
  apt_install chromium
}

ensure_postgres
ensure_mariadb
ensure_redis
ensure_rabbitmq
ensure_etcd
ensure_zookeeper
ensure_chromium
echo "services: PostgreSQL, MariaDB, Redis, RabbitMQ, etcd and ZooKeeper are up on 127.0.0.1; chromium is installed"

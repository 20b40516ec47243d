#!/usr/bin/env bash
# Multi-member store clusters on loopback for the HA tests and bench (issue 22): a 3-member etcd cluster
# and a 3-server ZooKeeper ensemble, on ports of their own (the single test servers of services.sh keep
# 2379/2380 and 2181), with their data under $BATON_HA_DIR (default /tmp/baton-ha).
#
#   ha-clusters.sh up [etcd|zookeeper|all]     start what is down, wait until the cluster has a leader and
#                                              every member serves (idempotent; fast when all is up)
#   ha-clusters.sh kill <member>               kill -9 one member (e1 e2 e3 | z1 z2 z3); its data stays
#   ha-clusters.sh start <member>              start one member again on its data, wait until it serves
#   ha-clusters.sh leader etcd|zookeeper       print the leader's member name (exit 1 when there is none)
#   ha-clusters.sh url etcd|zookeeper          print the store URL listing every member
#   ha-clusters.sh down [etcd|zookeeper|all]   kill every member and remove the data
#
# Members: etcd e<i> serves clients on 2379<i>+… (23791-23793), peers on 23801-23803; ZooKeeper z<i> serves
# clients on 21811-21813, quorum on 22881-22883, election on 23881-23883 (below the ephemeral port range).
# etcd keeps its defaults (heartbeat 100 ms, election timeout 1000 ms); ZooKeeper uses tickTime=500 like the
# test server, so a follower gives up on a silent leader after syncLimit × tickTime = 2.5 s. The four-letter
# words srvr, mntr, ruok, stat are enabled (the tests find the leader with srvr). Each JVM gets -Xmx128m.
# Every wait is bounded; a member is started in its own session so `kill` takes it with nothing else.
set -euo pipefail

HA_DIR=${BATON_HA_DIR:-/tmp/baton-ha}
ETCD_MEMBERS=(e1 e2 e3)
ZK_MEMBERS=(z1 z2 z3)

etcd_client_port() { echo $((23790 + ${1#e})); }
etcd_peer_port() { echo $((23800 + ${1#e})); }
zk_client_port() { echo $((21810 + ${1#z})); }

port_up() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() { # pid: alive and not a zombie (a killed member waits for init to reap it, and kill -0 succeeds on it)
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

alive() { # member
  [ -f "$HA_DIR/$1.pid" ] || return 1
  running "$(cat "$HA_DIR/$1.pid")"
}

zk_4lw() { # port word → the server's answer (empty when it does not answer within 2 s)
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf '%s' '$2' >&3 && cat <&3" 2>/dev/null || true
}

etcd_is_leader() { # member
  # Read whole before grep: with pipefail, curl cut off by `grep -q` would fail the test.
  local metrics
  metrics=$(curl -s -m 2 "http://127.0.0.1:$(etcd_client_port "$1")/metrics" 2>/dev/null) || return 1
  grep -q '^etcd_server_is_leader 1' <<<"$metrics"
}

etcd_serves() { # member: answers a linearizable read (needs a leader and a quorum)
  local answer
  answer=$(curl -s -m 2 -X POST "http://127.0.0.1:$(etcd_client_port "$1")/v3/kv/range" -d '{"key":"aGE="}' 2>/dev/null) || return 1
  grep -q '"header"' <<<"$answer"
}

zk_mode() { # member → leader | follower | (empty)
  zk_4lw "$(zk_client_port "$1")" srvr | sed -n 's/^Mode: //p'
}

start_etcd_member() { # member
  local m=$1 cluster="" other
  alive "$m" && return 0
  for other in "${ETCD_MEMBERS[@]}"; do
    cluster+="${cluster:+,}$other=http://127.0.0.1:$(etcd_peer_port "$other")"
  done
  mkdir -p "$HA_DIR"
  # On existing data etcd ignores the --initial-* flags and rejoins with its old identity.
  setsid nohup etcd --name "$m" --data-dir "$HA_DIR/$m" \
    --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$m")" \
    --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$m")" \
    --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$m")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$m")" \
    --initial-cluster "$cluster" --initial-cluster-token baton-ha --initial-cluster-state new \
    --log-level warn >>"$HA_DIR/$m.log" 2>&1 </dev/null &
  echo $! >"$HA_DIR/$m.pid"
}

start_zk_member() { # member
  local m=$1 dir="$HA_DIR/$1" i
  alive "$m" && return 0
  mkdir -p "$dir/data"
  echo "${m#z}" >"$dir/data/myid"
  {
    echo "tickTime=500"
    echo "minSessionTimeout=1000"
    echo "maxSessionTimeout=60000"
    echo "initLimit=10"
    echo "syncLimit=5"
    echo "dataDir=$dir/data"
    echo "clientPort=$(zk_client_port "$m")"
    echo "clientPortAddress=127.0.0.1"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=ruok,srvr,stat,mntr"
    echo "standaloneEnabled=false"
    for i in 1 2 3; do echo "server.$i=127.0.0.1:$((22880 + i)):$((23880 + i))"; done
  } >"$dir/zoo.cfg"
  ZOOCFGDIR="$dir" ZOO_LOG_DIR="$dir" JVMFLAGS="-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1" \
    setsid nohup /usr/share/zookeeper/bin/zkServer.sh start-foreground "$dir/zoo.cfg" \
    >>"$HA_DIR/$m.log" 2>&1 </dev/null &
  echo $! >"$HA_DIR/$m.pid"
}

members_of() { # etcd|zookeeper|all
  case "$1" in
    etcd) echo "${ETCD_MEMBERS[@]}" ;;
    zookeeper | zk) echo "${ZK_MEMBERS[@]}" ;;
    all) echo "${ETCD_MEMBERS[@]} ${ZK_MEMBERS[@]}" ;;
    *) echo "ha-clusters: unknown cluster '$1' (etcd, zookeeper, all)" >&2; exit 2 ;;
  esac
}

member_ready() { # member: serving clients as part of a quorum
  case "$1" in
    e?) etcd_serves "$1" ;;
    z?) [ -n "$(zk_mode "$1")" ] ;;
  esac
}

wait_ready() { # seconds member...
  local limit=$1 i m pending
  shift
  for ((i = 0; i < limit * 5; i++)); do
    pending=""
    for m in "$@"; do member_ready "$m" || pending+=" $m"; done
    [ -z "$pending" ] && return 0
    sleep 0.2
  done
  echo "ha-clusters:$pending not serving within $limit s (logs: $HA_DIR/<member>.log)" >&2
  return 1
}

check_member() { # member
  case "$1" in
    e[123] | z[123]) ;;
    *) echo "ha-clusters: unknown member '$1' (e1 e2 e3 z1 z2 z3)" >&2; exit 2 ;;
  esac
}

cmd_up() {
  local which=${1:-all} m started=()
  if [[ "$which" != zookeeper && "$which" != zk ]] && ! command -v etcd >/dev/null; then
    echo "ha-clusters: etcd is not installed (run scripts/services.sh)" >&2; exit 1
  fi
  if [[ "$which" != etcd ]] && [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
    echo "ha-clusters: ZooKeeper is not installed (run scripts/services.sh)" >&2; exit 1
  fi
  for m in $(members_of "$which"); do
    if ! alive "$m"; then
      case "$m" in e?) start_etcd_member "$m" ;; z?) start_zk_member "$m" ;; esac
      started+=("$m")
    fi
  done
  # The JVMs of a fresh ensemble need a while on a loaded 2-core machine.
  wait_ready 120 $(members_of "$which")
  [ ${#started[@]} -gt 0 ] && echo "ha-clusters: started ${started[*]}" || true
}

cmd_kill() {
  local m=$1 pid i
  check_member "$m"
  alive "$m" || return 0
  pid=$(cat "$HA_DIR/$m.pid")
  kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    running "$pid" || return 0
    sleep 0.1
  done
  echo "ha-clusters: $m (pid $pid) still alive 10 s after kill -9" >&2
  return 1
}

cmd_start() {
  local m=$1
  check_member "$m"
  case "$m" in e?) start_etcd_member "$m" ;; z?) start_zk_member "$m" ;; esac
  wait_ready 90 "$m"
}

cmd_leader() {
  local m
  for m in $(members_of "${1:?etcd or zookeeper}"); do
    case "$m" in
      e?) if alive "$m" && etcd_is_leader "$m"; then echo "$m"; return 0; fi ;;
      z?) if alive "$m" && [ "$(zk_mode "$m")" = leader ]; then echo "$m"; return 0; fi ;;
    esac
  done
  return 1
}

cmd_url() {
  local hosts="" m
  for m in $(members_of "${1:?etcd or zookeeper}"); do
    case "$m" in
      e?) hosts+="${hosts:+,}127.0.0.1:$(etcd_client_port "$m")" ;;
      z?) hosts+="${hosts:+,}127.0.0.1:$(zk_client_port "$m")" ;;
    esac
  done
  case "$1" in etcd) echo "etcd://$hosts" ;; *) echo "zk://$hosts/baton-ha" ;; esac
}

cmd_down() {
  local which=${1:-all} m
  for m in $(members_of "$which"); do
    cmd_kill "$m"
    rm -rf "${HA_DIR:?}/$m" "$HA_DIR/$m.pid" "$HA_DIR/$m.log"
  done
}

case "${1:-}" in
  up) cmd_up "${2:-all}" ;;
  kill) cmd_kill "${2:?member}" ;;
  start) cmd_start "${2:?member}" ;;
  leader) cmd_leader "${2:-}" ;;
  url) cmd_url "${2:-}" ;;
  down) cmd_down "${2:-all}" ;;
  *)
    echo "usage: ha-clusters.sh up|down [etcd|zookeeper|all] | kill|start <member> | leader|url etcd|zookeeper" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Starts and stops the key-value systems kv/bench compares kura against, all
# on 127.0.0.1:
#   - a 3-member etcd cluster: clients on 23791-23793, peers on 23801-23803,
#     members' data in DIR/etcd1..3, logs in DIR/etcd1..3.log
#     (--quota-backend-bytes left at etcd's default);
#   - redis-server on 26379 with an AOF fsynced every second and no RDB
#     snapshots, data in DIR/redis, log in DIR/redis.log.
#
#   scripts/kv-peers.sh start DIR   starts them, waits (at most 30 s each) until
#                                   they answer, prints on stdout
#                                     ETCD=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
#                                     REDIS=127.0.0.1:26379
#   scripts/kv-peers.sh stop DIR    stops what start started (pidfiles in DIR)
#                                   and waits for it to exit
#
# Installs etcd-server, etcd-client (etcdctl) and redis-server with apt-get
# when they are missing. Messages go to stderr; stdout carries only the
# endpoints.
set -euo pipefail

ETCD_CLIENT_PORTS=(23791 23792 23793)
ETCD_PEER_PORTS=(23801 23802 23803)
REDIS_PORT=26379
WAIT_SECONDS=30
STOP_SECONDS=15

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

log() { echo "kv-peers: $*" >&2; }

die() {
  log "$*"
  exit 1
}

# ensure_installed installs the Debian packages of whichever of etcd,
# etcdctl, redis-server and redis-cli is missing.
ensure_installed() {
  local pkgs=()
  command -v etcd >/dev/null 2>&1 || pkgs+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || pkgs+=(etcd-client)
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "${pkgs[*]} missing: install them (apt-get install -y ${pkgs[*]}) or run as root"
    sudo=(sudo)
  fi
  log "installing ${pkgs[*]}"
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${pkgs[@]}" >&2; then
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${pkgs[@]}" >&2
  fi
  # The Debian packages start system-wide services on their default ports;
  # they do not collide with ours.
}

etcd_endpoints() {
  local eps=() p
  for p in "${ETCD_CLIENT_PORTS[@]}"; do eps+=("127.0.0.1:$p"); done
  local IFS=,
  echo "${eps[*]}"
}

# alive PID NAME: PID is running and its command line mentions NAME (guards
# against a stale pidfile whose pid has been reused).
alive() {
  local pid=$1 name=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  fi
}

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_of() { [ -s "$1" ] && tr -d '[:space:]' <"$1" || true; }

START_DIR=
START_OK=0
on_start_exit() {
  local rc=$?
  if [ "$START_OK" != 1 ] && [ -n "$START_DIR" ]; then
    log "start failed; stopping what was started"
    stop "$START_DIR" || true
  fi
  exit "$rc"
}

start() {
  local dir=$1
  ensure_installed
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local i pid
  for i in 1 2 3; do
    pid=$(pid_of "$dir/etcd$i.pid")
    if alive "$pid" etcd; then die "etcd member $i already running (pid $pid); run: $0 stop $dir"; fi
  done
  pid=$(pid_of "$dir/redis.pid")
  if alive "$pid" redis-server; then die "redis-server already running (pid $pid); run: $0 stop $dir"; fi

  # A server already on one of our ports would answer the health checks in
  # place of ours.
  local port
  for port in "${ETCD_CLIENT_PORTS[@]}" "${ETCD_PEER_PORTS[@]}" "$REDIS_PORT"; do
    if listening "$port"; then die "port 127.0.0.1:$port is already in use"; fi
  done

  # From here on, any failure (die or set -e) stops whatever was started.
  START_DIR=$dir
  trap on_start_exit EXIT

  local cluster="" n
  for i in 1 2 3; do
    cluster+="${cluster:+,}kb$i=http://127.0.0.1:${ETCD_PEER_PORTS[i - 1]}"
  done
  for i in 1 2 3; do
    n=$((i - 1))
    etcd --name "kb$i" \
      --data-dir "$dir/etcd$i" \
      --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[n]}" \
      --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[n]}" \
      --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[n]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[n]}" \
      --initial-cluster "$cluster" \
      --initial-cluster-token kura-bench \
      --initial-cluster-state new \
      </dev/null >"$dir/etcd$i.log" 2>&1 &
    echo $! >"$dir/etcd$i.pid"
  done

  mkdir -p "$dir/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --appendonly yes --appendfsync everysec \
    --dir "$dir/redis" --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    </dev/null >&2

  local eps deadline
  eps=$(etcd_endpoints)
  deadline=$((SECONDS + WAIT_SECONDS))
  until ETCDCTL_API=3 etcdctl --endpoints "$eps" --dial-timeout 1s --command-timeout 2s \
    endpoint health >/dev/null 2>&1; do
    for i in 1 2 3; do
      if ! alive "$(pid_of "$dir/etcd$i.pid")" etcd; then
        tail -n 20 "$dir/etcd$i.log" >&2 || true
        die "etcd member $i exited; log: $dir/etcd$i.log"
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      ETCDCTL_API=3 etcdctl --endpoints "$eps" --dial-timeout 1s --command-timeout 2s \
        endpoint health >&2 || true
      die "etcd not healthy after ${WAIT_SECONDS}s; logs: $dir/etcd*.log"
    fi
    sleep 0.5
  done
  for i in 1 2 3; do
    alive "$(pid_of "$dir/etcd$i.pid")" etcd || die "etcd member $i exited; log: $dir/etcd$i.log"
  done

  deadline=$((SECONDS + WAIT_SECONDS))
  # Our redis-server must answer: a PONG from a server that was already on
  # the port while ours died (port in use) does not count.
  until [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] &&
    alive "$(pid_of "$dir/redis.pid")" redis-server; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$dir/redis.log" >&2 || true
      die "redis-server not answering after ${WAIT_SECONDS}s; log: $dir/redis.log"
    fi
    sleep 0.2
  done
  START_OK=1

  log "etcd and redis-server running; stop them with: $0 stop $dir"
  echo "ETCD=$eps"
  echo "REDIS=127.0.0.1:$REDIS_PORT"
}

# stop_pidfile FILE NAME: TERM the process, wait, KILL it if it lingers.
stop_pidfile() {
  local file=$1 name=$2 pid deadline
  pid=$(pid_of "$file")
  if [ -z "$pid" ]; then
    rm -f "$file"
    return 0
  fi
  if alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_SECONDS))
    while alive "$pid" "$name"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "$name (pid $pid) still running after ${STOP_SECONDS}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_SECONDS))
      fi
      sleep 0.1
    done
  fi
  rm -f "$file"
}

stop() {
  local dir=$1 i
  [ -d "$dir" ] || die "no such directory: $dir"
  stop_pidfile "$dir/redis.pid" redis-server
  for i in 1 2 3; do
    stop_pidfile "$dir/etcd$i.pid" etcd
  done
  log "stopped"
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac

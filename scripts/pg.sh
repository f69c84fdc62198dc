#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests (dfs's metadata store).
#
#   scripts/pg.sh start DIR [WATCH_PID]  create a cluster in DIR, start it on
#                                        127.0.0.1 (a free port, trust auth) and
#                                        print its URL; with WATCH_PID, stop it
#                                        and remove DIR when that process ends
#                                        (a test binary killed by a timeout
#                                        leaves no server behind)
#   scripts/pg.sh stop DIR               stop the server and its watcher
#   scripts/pg.sh url DIR                print the URL of the server in DIR
#
# Installs Debian's postgresql with apt-get when initdb is missing. PostgreSQL
# refuses to run as root, so as root the cluster belongs to the postgres user.
# The cluster trades durability for speed (fsync off): it is for tests only.
set -euo pipefail

usage() { echo "usage: $0 start DIR [WATCH_PID] | stop DIR | url DIR" >&2; exit 2; }
die() { echo "pg.sh: $*" >&2; exit 1; }

# find_bindir prints the directory holding initdb, pg_ctl and postgres.
find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  return 1
}

install_postgres() {
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root: apt-get install postgresql"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL 13 or newer"
  echo "pg.sh: installing postgresql with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
}

# as_owner runs a command as the cluster's owner (postgres when we are root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local dir=$1 watch=${2:-}
  local bindir
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "initdb not found after installing postgresql"; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ -e "$dir/data/PG_VERSION" ] && die "$dir already holds a cluster (stop it and remove $dir first)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with Debian's postgresql package)"
    chown postgres: "$dir"
  fi
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || die "initdb failed: $(tail -5 "$dir/initdb.log")"
  local port tries
  for tries in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 40000))
    port_busy "$port" && continue
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
      local url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      echo "$url" >"$dir/url"
      if [ -n "$watch" ]; then
        # The watcher stops the server when WATCH_PID ends; setsid detaches
        # it from the caller's process group and terminal.
        setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; bash "$0" stop "$2" && rm -rf "$2"' \
          "$(readlink -f "$0")" "$watch" "$dir" </dev/null >/dev/null 2>&1 &
        echo $! >"$dir/watcher.pid"
      fi
      echo "$url"
      return 0
    fi
    # Most likely a port race: take the port out of the config and retry.
    sed -i '/^listen_addresses = /,$d' "$dir/data/postgresql.conf"
  done
  die "could not start PostgreSQL in $dir: $(tail -5 "$dir/server.log" 2>/dev/null)"
}

stop() {
  local dir=$1 bindir
  [ -d "$dir/data" ] || return 0
  if [ -f "$dir/watcher.pid" ]; then
    local w
    w=$(cat "$dir/watcher.pid")
    rm -f "$dir/watcher.pid"
    # Never kill ourselves: the watcher runs "stop" itself.
    [ "$w" != "$$" ] && [ "$w" != "$PPID" ] && kill "$w" 2>/dev/null || true
  fi
  [ -f "$dir/data/postmaster.pid" ] || return 0
  bindir=$(find_bindir) || die "pg_ctl not found"
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

url() {
  [ -f "$1/url" ] || die "no server in $1 (start one with: $0 start $1)"
  cat "$1/url"
}

[ $# -ge 2 ] || usage
case "$1" in
  start) start "$2" "${3:-}" ;;
  stop) stop "$2" ;;
  url) url "$2" ;;
  *) usage ;;
esac

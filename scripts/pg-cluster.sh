#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for trying disparo on PostgreSQL and for benchmarks:
#
#   scripts/pg-cluster.sh start DIR   # creates DIR (first time) and starts it; prints the URL
#   scripts/pg-cluster.sh url DIR     # prints the URL again
#   scripts/pg-cluster.sh stop DIR    # stops it (DIR stays; `rm -rf DIR` to forget it)
#
# The cluster listens on 127.0.0.1 only, on a free port chosen at creation, with its unix
# socket inside DIR, a superuser `disparo` whose password is checked (scram-sha-256) and
# fsync off (fast, and not crash-safe: for tests and benchmarks, never for real data).
# As root the server runs as the `postgres` user (PostgreSQL refuses root), DIR chowned to it.
# The tests start their own clusters the same way (tests/harness/pg.rs).
set -euo pipefail

usage() {
  echo "usage: $0 start|url|stop DIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
cmd="$1"
dir="$2"

here="$(cd "$(dirname "$0")" && pwd)"
bin_dir() {
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return
  fi
  local found
  found="$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 || true)"
  [[ -n "$found" ]] && dirname "$found"
}
bin="$(bin_dir || true)"
if [[ -z "$bin" ]]; then
  bash "$here/test-deps.sh"
  bin="$(bin_dir)"
fi

as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

url() {
  local port
  port="$(cat "$dir/port")"
  echo "postgres://disparo:$(cat "$dir/password")@127.0.0.1:$port/postgres?sslmode=disable"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ "$(id -u)" == 0 ]] && ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
      echo "pg-cluster: the postgres user cannot reach $(dirname "$dir") (the server runs as postgres)" >&2
      echo "  hint: put DIR where every user may enter its parent folders, e.g. under /tmp" >&2
      exit 1
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      mkdir -p "$dir/sock"
      free_port >"$dir/port"
      # A password nobody guesses; kept beside the cluster for `url`.
      head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/password"
      if [[ "$(id -u)" == 0 ]]; then chown -R postgres "$dir"; fi
      as_owner "$bin/initdb" -D "$dir/data" -U disparo --auth=scram-sha-256 \
        --pwfile="$dir/password" -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $(cat "$dir/port")
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
        { tail -n 20 "$dir/server.log" >&2; exit 1; }
    fi
    url
    ;;
  url)
    url
    ;;
  stop)
    dir="$(cd "$dir" && pwd)"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    usage
    ;;
esac

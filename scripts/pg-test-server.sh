#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests (and for trying `--database postgresql://...`).
#
#   scripts/pg-test-server.sh start [STATE_DIR]   initdb in a fresh temp dir, start it on
#                                                 127.0.0.1 at a free port (unix socket in the
#                                                 temp dir), print the connection URL; with
#                                                 STATE_DIR, also write STATE_DIR/url and
#                                                 remember the server there
#   scripts/pg-test-server.sh stop STATE_DIR      stop that server and delete its files
#
# As root the server runs as the `postgres` user (initdb refuses root). Trust authentication on
# loopback only; fsync off: this is for tests, never for data you keep.
set -euo pipefail

die() { echo "pg-test-server: $*" >&2; exit 1; }

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x $dir/pg_ctl ]] && { echo "$dir"; return; }
  done
  if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/pg_ctl ]]; then
    pg_config --bindir; return
  fi
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  die "PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)"
}

# Runs a command as the server's user: postgres when we are root, ourselves otherwise.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_server() {
  local state=$1 pgdir
  [[ -f $state/pgdir ]] || return 0
  pgdir=$(cat "$state/pgdir")
  if [[ -d $pgdir/data ]]; then
    as_owner "$BIN/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf -- "$pgdir"
  rm -f -- "$state/pgdir" "$state/url"
}

start_server() {
  local state=${1:-} pgdir port attempt url
  if [[ -n $state ]]; then
    mkdir -p "$state"
    stop_server "$state"  # a server left behind by an interrupted run
  fi
  if [[ $(id -u) -eq 0 ]]; then
    getent passwd postgres >/dev/null || die "running as root needs a 'postgres' user to run the server as"
  fi
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/openstation-pg.XXXXXX")
  chmod 755 "$pgdir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
  [[ -n $state ]] && echo "$pgdir" >"$state/pgdir"
  as_owner "$BIN/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-sync \
    >"$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log" >&2; die "initdb failed"; }
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    # Another process may take the port between free_port and the bind: then try another.
    if as_owner "$BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
        -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
      url="postgresql://postgres@127.0.0.1:$port/postgres"
      [[ -n $state ]] && echo "$url" >"$state/url"
      echo "$url"
      return 0
    fi
  done
  cat "$pgdir/server.log" >&2 || true
  die "PostgreSQL did not start (see the log above)"
}

BIN=$(find_bin)
case "${1:-}" in
  start) start_server "${2:-}" ;;
  stop) [[ -n ${2:-} ]] || die "usage: $0 stop STATE_DIR"; stop_server "$2" ;;
  *) die "usage: $0 start [STATE_DIR] | stop STATE_DIR" ;;
esac

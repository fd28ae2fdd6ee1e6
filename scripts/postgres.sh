#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: `source scripts/postgres.sh`
# starts one in a temp dir on a free port (trust auth, loopback only, no fsync)
# and exports TEST_POSTGRES_URL; `postgres_stop` (or the EXIT trap of the
# caller) stops it and removes its files. Uses Debian's postgresql-15
# binaries, which are installed but not on PATH.

postgres_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null && command -v pg_ctl >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# initdb refuses to run as root: run the server as the `postgres` user then.
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

postgres_start() {
  local bindir port
  bindir=$(postgres_bindir) || { echo "postgres.sh: initdb/pg_ctl not found (install postgresql-15)" >&2; return 1; }
  PG_TEST_BINDIR=$bindir
  PG_TEST_DIR=$(mktemp -d /tmp/inboxlink-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_TEST_DIR"
  port=$(free_port)
  as_pg_user "$bindir/initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust --no-sync -E UTF8 >"$PG_TEST_DIR/initdb.log" 2>&1 \
    || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  echo "$port" >"$PG_TEST_DIR/port"
  postgres_serve || return 1
  export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "postgres.sh: throw-away PostgreSQL on 127.0.0.1:$port ($PG_TEST_DIR)" >&2
}

# Starts the server of the cluster in $PG_TEST_DIR (with $PG_TEST_BINDIR) on
# its port: by postgres_start, and again after postgres_halt.
postgres_serve() {
  local port
  port=$(cat "$PG_TEST_DIR/port")
  as_pg_user "$PG_TEST_BINDIR/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 30 \
    -o "-p $port -k $PG_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
}

# Stops the server as an operator's restart does (`-m fast`: every session
# ends, open transactions roll back), keeping the cluster's files.
postgres_halt() {
  as_pg_user "$PG_TEST_BINDIR/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w -t 30 stop >/dev/null
}

postgres_stop() {
  [ -n "${PG_TEST_DIR:-}" ] || return 0
  as_pg_user "$PG_TEST_BINDIR/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
  unset PG_TEST_DIR TEST_POSTGRES_URL
}

#!/usr/bin/env bash
# A throwaway PostgreSQL server for hpo's tests: a fresh cluster in a temporary
# folder, trust authentication, listening on 127.0.0.1 at a free port, run as an
# unprivileged user (`postgres` when started as root). Prints
#   postgresql://postgres@127.0.0.1:PORT/postgres
# once it accepts connections, then reads commands from standard input:
#   restart   stop the server (fast shutdown) and start it again
# and when standard input closes (the test process that started it exited),
# stops the server and deletes the folder. Needs Debian's postgresql package
# (scripts/test.sh installs it).
set -euo pipefail
bin=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bin/initdb" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ ! -x "$bin/initdb" ]; then
  echo "pg-test-cluster: no PostgreSQL server found; install Debian's postgresql package (scripts/test.sh does)" >&2
  exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/hpo-pg.XXXXXX")
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$dir"
cleanup() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$bin/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# A test server: no fsync (a throwaway cluster), room for many connections.
options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
start() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -o "$options" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
}
start
echo "postgresql://postgres@127.0.0.1:$port/postgres"
while read -r command; do
  case "$command" in
    restart)
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
      start
      echo restarted
      ;;
  esac
done

#!/usr/bin/env bash
# A PostgreSQL server on loopback as a plain process, from Debian's packages
# (`e2e/tools/install.sh postgres`): the local control plane's state store (cluster.sh), and the
# private store of a test that stops and starts its own (e2e/tests/durable.rs).
#
#   postgres.sh bin                          the folder of the newest installed server's programs
#   postgres.sh init DATA PASSWORD_FILE LOG  make the data folder (initdb, user troupe, the password
#                                            in PASSWORD_FILE) unless it holds one already
#   postgres.sh run DATA PORT                run the server in the foreground (cluster.sh supervises it)
#   postgres.sh start DATA PORT              start it in the background, wait until it answers (log DATA.log)
#   postgres.sh stop DATA                    stop it (fast: clients are cut off) and wait until it is gone
#   postgres.sh tls DATA CERT KEY [CLIENT_CA] serve TLS with CERT and KEY (PEM), and TLS only: pg_hba.conf
#                                            gets `hostssl` entries alone (before start; e2e TLS tests);
#                                            with CLIENT_CA, clients need a certificate it signed too
#
# PostgreSQL refuses to run as root: as root, every step runs as the `postgres` user (Debian's
# package makes it), so DATA must be somewhere that user can reach (under /tmp).
set -euo pipefail

die() { echo "[postgres] ERROR: $*" >&2; exit 1; }

server_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin/postgres" ] || die "PostgreSQL is not installed (e2e/tools/install.sh postgres)"
  echo "$bin"
}

as=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "no postgres user to run PostgreSQL as"
  as=(runuser -u postgres --)
fi
# Makes a path the server's user writes to, owned by that user.
owned() { if [ ${#as[@]} -gt 0 ]; then chown postgres "$@"; fi; }

case "${1:-}" in
  bin) server_bin ;;
  init)
    data=$2 password=$3 log=$4
    [ -f "$data/PG_VERSION" ] && exit 0
    bin=$(server_bin)
    rm -rf "$data"
    mkdir -p "$data"
    pwfile=$data.pw
    (umask 077; cp "$password" "$pwfile")
    owned "$data" "$pwfile"
    "${as[@]}" "$bin/initdb" -D "$data" -U troupe --pwfile="$pwfile" --auth=scram-sha-256 -E UTF8 >>"$log" 2>&1 \
      || { rm -f "$pwfile"; die "initdb failed (log $log)"; }
    rm -f "$pwfile"
    ;;
  run)
    data=$2 port=$3
    exec "${as[@]}" "$(server_bin)/postgres" -D "$data" -h 127.0.0.1 -p "$port" -k "$data" -c max_connections=200
    ;;
  start)
    data=$2 port=$3
    touch "$data.log"
    owned "$data.log"
    "${as[@]}" "$(server_bin)/pg_ctl" -D "$data" -l "$data.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $port -k $data -c max_connections=50" start >/dev/null \
      || { tail -n 20 "$data.log" >&2; die "the server did not start (log $data.log)"; }
    ;;
  tls)
    data=$2 cert=$3 key=$4 client_ca=${5:-}
    [ -f "$data/PG_VERSION" ] || die "no data folder at $data (postgres.sh init first)"
    # The server reads server.crt and server.key from its data folder by default; it refuses a
    # key that others can read.
    install -m 0644 "$cert" "$data/server.crt"
    install -m 0600 "$key" "$data/server.key"
    owned "$data/server.crt" "$data/server.key"
    grep -qx "ssl = on" "$data/postgresql.conf" || echo "ssl = on" >>"$data/postgresql.conf"
    # With a client CA, a client must also present a certificate it signed, for the user it
    # logs in as (its common name), besides the password.
    auth=scram-sha-256
    if [ -n "$client_ca" ]; then
      install -m 0644 "$client_ca" "$data/client-ca.crt"
      owned "$data/client-ca.crt"
      echo "ssl_ca_file = 'client-ca.crt'" >>"$data/postgresql.conf"
      auth="scram-sha-256 clientcert=verify-full"
    fi
    # No `host` entry: a connection without TLS finds none and is refused ("no encryption").
    printf '%s\n' "local all all scram-sha-256" "hostssl all all 127.0.0.1/32 $auth" \
      "hostssl all all ::1/128 $auth" >"$data/pg_hba.conf"
    owned "$data/pg_hba.conf"
    ;;
  stop)
    data=$2
    "${as[@]}" "$(server_bin)/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null
    ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac

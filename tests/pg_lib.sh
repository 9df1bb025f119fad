# pg_lib.sh - a private PostgreSQL 15 for one test (source it).
#
# pg_start: initdb into a fresh temporary directory as an unprivileged user
#   (the current one, or when running as root the system user
#   fleetpki-test, created if missing, commands run through runuser), then
#   start it listening on a socket in that directory and on 127.0.0.1 at a
#   free port.  Sets PG_DIR (data + socket directory), PG_PORT, PG_BIN.
#   Returns 77 (after saying why) when PostgreSQL is not installed.
# pg_new_db NAME: a fresh database NAME owned by role fleetpki (created
#   once, NOSUPERUSER NOCREATEDB: what docs/postgresql.md asks of a
#   deployment) and echoes its libpq connection string (key=value; prefix
#   it with "pg:" for a fleetpki store path).
# pg_stop [MODE]: stop it (pg_ctl -m MODE, default fast); pg_restart
#   starts it again on the same directory and port.
# pg_psql SQL...: run SQL as the cluster's superuser (database postgres).
# pg_cleanup: stop and remove everything (call it from the EXIT trap).
#
# No shared server, no system cluster: each call of pg_start makes its own.
# fsync is off (PG_FSYNC=on turns it on, as benchmarks do): the tests kill
# fleetpki nodes and restart PostgreSQL, never the machine, so the page
# cache keeps every committed transaction.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
PG_DIR=""
PG_PORT=""
PG_USER=fleetpki-test
PG_DIRS=()

# Run a PostgreSQL program as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pg_available() {
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
        echo "skip: PostgreSQL server binaries not found (install Debian's postgresql)" >&2
        return 77
    fi
    if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" ||
            { echo "skip: cannot create user $PG_USER for initdb" >&2; return 77; }
    fi
    return 0
}

pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pg_init DIR PORT: initdb DIR (owned by the cluster's owner) and configure it.
pg_init() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$dir"
    chmod 700 "$dir"
    pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = ${PG_FSYNC:-off}
full_page_writes = ${PG_FSYNC:-off}
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
wal_level = replica
max_wal_senders = 4
hot_standby = on
EOF
    echo "host replication all 127.0.0.1/32 trust" >>"$dir/data/pg_hba.conf"
}

pg_start_dir() {
    local dir=$1 port=$2
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
        { cat "$dir/server.log" >&2; return 1; }
}

pg_start() {
    pg_available || return $?
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fppg.XXXXXX")
    PG_DIRS+=("$PG_DIR")
    PG_PORT=$(pg_free_port)
    pg_init "$PG_DIR" "$PG_PORT" || return 1
    pg_start_dir "$PG_DIR" "$PG_PORT"
}

pg_stop() {
    local mode=${1:-fast}
    [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1
    return 0
}

pg_restart() { pg_start_dir "$PG_DIR" "$PG_PORT"; }

pg_psql() {
    PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres \
        -d "${PG_DB:-postgres}" -At "$@"
}

pg_new_db() {
    local name=$1
    pg_psql -c "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetpki')
                THEN CREATE ROLE fleetpki LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; END\$\$" &&
        pg_psql -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" &&
        pg_psql -c "CREATE DATABASE \"$name\" OWNER fleetpki" || return 1
    echo "host=$PG_DIR port=$PG_PORT dbname=$name user=fleetpki"
}

pg_cleanup() {
    local d
    for d in "${PG_DIRS[@]:-}"; do
        [ -n "$d" ] || continue
        [ -f "$d/data/postmaster.pid" ] &&
            pg_as_owner "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1
        rm -rf "$d"
    done
    PG_DIRS=()
    return 0
}

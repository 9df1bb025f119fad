# lib.sh - shared helpers for integration tests (source it).
#
# Each test gets a private temp dir ($T) removed on exit (FP_TEST_KEEP=1
# keeps it when the test fails, with server.log), a fresh CA made
# for the run, and helpers to pick free loopback ports and to stop servers
# it started.  FLEETPKI must point at the built binary (ctest sets it).
set -euo pipefail

: "${FLEETPKI:?set FLEETPKI to the fleetpki binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/fptest.XXXXXX")
FP_PIDS=()

fp_cleanup() {
    local rc=$? pid
    for pid in "${FP_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # the private PostgreSQL (FP_TEST_STORE=pg) outlives every node
    if declare -F pg_cleanup >/dev/null; then pg_cleanup; fi
    # FP_TEST_KEEP=1: a failing test leaves its temp dir (server.log...)
    if [ "$rc" != 0 ] && [ -n "${FP_TEST_KEEP:-}" ]; then
        echo "kept $T" >&2
        return
    fi
    rm -rf "$T"
}
trap fp_cleanup EXIT

# FP_TEST_STORE=pg: every store this test makes is a fresh database of a
# private PostgreSQL (tests/pg_lib.sh) started on first use, instead of
# the SQLite file: `fp init` gets --store-url.  A test that reads the
# SQLite file itself (the sqlite3 shell) cannot run so and skips.
if [ "${FP_TEST_STORE:-sqlite}" = pg ]; then
    if grep -qE 'sqlite3|fleetpki\.db' "$0"; then
        echo "skip: $(basename "$0") reads or writes the SQLite file directly (FP_TEST_STORE=pg)" >&2
        exit 77
    fi
    . "$(dirname "${BASH_SOURCE[0]}")/../pg_lib.sh"
    # here, not on first use: `CA=$(fp_new_ca)` runs in a subshell, whose
    # server would outlive the test
    pg_start || { rc=$?; [ "$rc" = 77 ] && exit 77; echo "cannot start PostgreSQL" >&2; exit 1; }
fi

# fp_pg_url: a fresh database's store URL (a name unique even across
# subshells, which do not share a counter).
fp_pg_url() {
    echo "pg:$(pg_new_db "fp_$(date +%s%N)_$BASHPID")"
}

fp() {
    if [ "${FP_TEST_STORE:-sqlite}" = pg ] && [ "${1:-}" = init ]; then
        local url
        url=$(fp_pg_url) || fail "cannot make a PostgreSQL database"
        url=${url#pg:}
        "$FLEETPKI" "$@" --store-url "$url"
        return
    fi
    "$FLEETPKI" "$@"
}

# Remember a background pid so it is stopped at exit.
fp_track() { FP_PIDS+=("$1"); }

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race accepted).
fp_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Fresh CA in $T/ca (or $1).  Extra args go to init.
fp_new_ca() {
    local dir=${1:-$T/ca}
    shift || true
    fp init --dir "$dir" --name "Test Org" "$@" >/dev/null
    echo "$dir"
}

# CSR with key: fp_csr NAME SUBJ [openssl req args...] -> $T/NAME.key, $T/NAME.csr
fp_csr() {
    local name=$1 subj=$2
    shift 2
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$name.key" -subj "$subj" "$@" -out "$T/$name.csr" 2>/dev/null
}

pass() { echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; exit 1; }

# expect_fail DESC CMD...: CMD must exit non-zero.
expect_fail() {
    local desc=$1
    shift
    if "$@" >"$T/last.out" 2>"$T/last.err"; then
        cat "$T/last.out" "$T/last.err" >&2
        fail "$desc (succeeded, expected failure)"
    fi
    pass "$desc"
}

# expect_code CODE DESC CMD...: CMD must exit with CODE.
expect_code() {
    local code=$1 desc=$2 rc=0
    shift 2
    "$@" >"$T/last.out" 2>"$T/last.err" || rc=$?
    if [ "$rc" != "$code" ]; then
        cat "$T/last.out" "$T/last.err" >&2
        fail "$desc (exit $rc, expected $code)"
    fi
    pass "$desc"
}

# fp_serve_start [CONFIG-SNIPPET]: fresh CA in $CA (the snippet appended to
#   its fleetpki.conf), `fleetpki serve` on free loopback ports (port 0, or
#   FP_HTTP_LISTEN for the plain listener; the server reports what it bound
#   through --addr-file).  Sets SRV_PID, HTTPS and HTTP (host:port).
# fp_serve_run: the same on the CA already in $CA (e.g. after a crash).
fp_serve_start() {
    fp_new_ca "$CA" >/dev/null
    if [ -n "${1:-}" ]; then printf '\n%s\n' "$1" >>"$CA/fleetpki.conf"; fi
    fp_serve_run
}

fp_serve_run() {
    rm -f "$T/addr"
    "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http "${FP_HTTP_LISTEN:-127.0.0.1:0}" \
        --threads 2 --addr-file "$T/addr" 2>"$T/server.log" &
    SRV_PID=$!
    fp_track "$SRV_PID"
    for _ in $(seq 1 200); do
        [ -s "$T/addr" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$T/server.log" >&2; fail "server did not start"; }
        sleep 0.05
    done
    [ -s "$T/addr" ] || fail "server did not report its address"
    HTTPS=$(sed -n 's/^https=//p' "$T/addr")
    HTTP=$(sed -n 's/^http=//p' "$T/addr")
}

# fp_serve_stop: SIGTERM the server; fails unless it exits 0.
fp_serve_stop() {
    local rc=0
    kill -TERM "$SRV_PID"
    wait "$SRV_PID" || rc=$?
    [ "$rc" = 0 ] || { cat "$T/server.log" >&2; fail "server exited with $rc after SIGTERM"; }
}

# fp_wait_more DIR NAME-GLOB N: wait (up to 30 s) until DIR holds more than
# N files matching NAME-GLOB; crash tests use it so each round gets some
# work done before its kill, however slow the build (sanitizers) is.
fp_wait_more() {
    local _
    for _ in $(seq 1 300); do
        [ "$(find "$1" -name "$2" | wc -l)" -gt "$3" ] && return 0
        sleep 0.1
    done
    return 0
}

#!/usr/bin/env bash
# pg_run.sh COMMAND...: run COMMAND with a private PostgreSQL (pg_lib.sh)
# started for it and stopped after it.  COMMAND sees FP_TEST_PG, a libpq
# connection string of the cluster's superuser over its socket (for making
# a database per case) and FP_TEST_PG_DIR/PORT.  Exits 77 when PostgreSQL
# is not installed (ctest: skipped).
set -uo pipefail
. "$(dirname "$0")/pg_lib.sh"
trap pg_cleanup EXIT
rc=0
pg_start || { rc=$?; [ "$rc" = 77 ] && exit 77; echo "pg_run: cannot start PostgreSQL" >&2; exit 1; }
export FP_TEST_PG="host=$PG_DIR port=$PG_PORT dbname=postgres user=postgres"
export FP_TEST_PG_DIR=$PG_DIR FP_TEST_PG_PORT=$PG_PORT
"$@" || rc=$?
exit "$rc"

# pg_nodes_lib.sh - several `fleetpki serve` nodes on one PostgreSQL
# database (source after lib.sh with FP_TEST_STORE=pg, and est_lib.sh).
#
# node_start I: node I on the CA in $CA (its [store] url is the shared
#   database), free loopback ports; sets NPID[I], NHTTPS[I], NHTTP[I];
#   its log is $T/node$I.log.
# node_kill I: SIGKILL node I (no cleanup of its own).
# node_stop I: SIGTERM node I; fails unless it exits 0.
# enroll_loop I N OUT: N enrollments in a row on node I with the token in
#   TOK_ID/TOK_SECRET (one new TLS connection each; the CSR $T/lc.b64),
#   appending the serial of every certificate received to OUT and every
#   HTTP status to OUT.codes.  Connection failures are counted, not fatal.
# store_db: the test database's name (from $CA/fleetpki.conf).
# db_serials FILE: every serial in the database, sorted, into FILE.

declare -a NPID NHTTPS NHTTP

node_start() {
    local i=$1
    rm -f "$T/addr$i"
    "$FLEETPKI" serve --dir "$CA" --https 127.0.0.1:0 --http 127.0.0.1:0 --threads 2 \
        --addr-file "$T/addr$i" 2>>"$T/node$i.log" &
    NPID[$i]=$!
    fp_track "${NPID[$i]}"
    for _ in $(seq 1 300); do
        [ -s "$T/addr$i" ] && break
        kill -0 "${NPID[$i]}" 2>/dev/null || { cat "$T/node$i.log" >&2; fail "node $i did not start"; }
        sleep 0.05
    done
    [ -s "$T/addr$i" ] || fail "node $i did not report its address"
    NHTTPS[$i]=$(sed -n 's/^https=//p' "$T/addr$i")
    NHTTP[$i]=$(sed -n 's/^http=//p' "$T/addr$i")
}

node_kill() { kill -KILL "${NPID[$1]}" 2>/dev/null || true; wait "${NPID[$1]}" 2>/dev/null || true; }

node_stop() {
    local rc=0
    kill -TERM "${NPID[$1]}"
    wait "${NPID[$1]}" || rc=$?
    [ "$rc" = 0 ] || { tail -20 "$T/node$1.log" >&2; fail "node $1 exited with $rc after SIGTERM"; }
}

enroll_loop() {
    local i=$1 n=$2 out=$3 k code
    for k in $(seq 1 "$n"); do
        code=$(curl -sS --max-time 60 --cacert "$CA/root.crt" -u "$TOK_ID:$TOK_SECRET" \
            -H 'Content-Type: application/pkcs10' --data-binary @"$T/lc.b64" \
            -o "$out.$k.p7" -w '%{http_code}' \
            "https://${NHTTPS[$i]}/.well-known/est/simpleenroll" 2>/dev/null) || code=000
        echo "$code" >>"$out.codes"
        if [ "$code" = 200 ]; then
            openssl base64 -d -in "$out.$k.p7" | openssl pkcs7 -inform DER -print_certs |
                openssl x509 -noout -serial | cut -d= -f2 >>"$out"
        fi
        rm -f "$out.$k.p7"
    done
}

store_db() { sed -n 's/^url = .*dbname=\([^ ]*\).*/\1/p' "$CA/fleetpki.conf"; }

db_serials() { PG_DB=$(store_db) pg_psql -c "SELECT serial FROM certificates" | sort >"$1"; }

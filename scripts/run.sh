#!/usr/bin/env bash
# Builds fleetpki and runs it on the embedded default: SQLite store, a CA
# created in ./fleetpki-data on first run, EST on https://127.0.0.1:8443 and
# CRL/OCSP on http://127.0.0.1:8080 (loopback only).  Installs its own
# Debian packages first.  Prints how to enroll a first device with curl and
# openssl (a fresh one-time token each start).  Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target fleetpki

DIR=${FLEETPKI_DIR:-./fleetpki-data}
if [ ! -f "$DIR/fleetpki.conf" ]; then
    ./build/fleetpki init --dir "$DIR"
fi

HTTPS=$(sed -n 's/^https_listen *= *//p' "$DIR/fleetpki.conf" | head -1)
HTTPS=${HTTPS:-127.0.0.1:8443}
TOKEN_OUT=$(./build/fleetpki token create --dir "$DIR" --label default --uses 1 --ttl 1d)
TOKEN_ID=$(printf '%s\n' "$TOKEN_OUT" | awk '/^id:/ {print $2}')
TOKEN_SECRET=$(printf '%s\n' "$TOKEN_OUT" | awk '/^secret:/ {print $2}')
CA_PEM=$(cd "$DIR" && pwd)/root.crt

cat <<EOF

fleetpki is starting: EST on https://$HTTPS/.well-known/est/
A one-time enrollment token was created for this session (valid 1 day):
  id $TOKEN_ID   secret $TOKEN_SECRET

Enroll a first device from another shell (copy and paste):

  # 1. the device makes a key and a CSR (base64 DER, as EST wants it)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
      -keyout device.key -subj "/CN=device-0001" -outform DER | base64 > device.csr.b64
  # 2. it enrolls with the token (RFC 7030 simpleenroll, HTTP Basic)
  curl -sS --cacert $CA_PEM -u '$TOKEN_ID:$TOKEN_SECRET' \\
      -H 'Content-Type: application/pkcs10' --data-binary @device.csr.b64 \\
      https://$HTTPS/.well-known/est/simpleenroll -o device.p7.b64
  # 3. the answer is a base64 certs-only PKCS#7: take the certificate out and check it
  openssl base64 -d -in device.p7.b64 | openssl pkcs7 -inform DER -print_certs -out device.crt
  openssl verify -CAfile $CA_PEM -untrusted $(cd "$DIR" && pwd)/issuing.crt device.crt
  # 4. later it renews with its own certificate (simplereenroll, same subject)
  openssl req -new -key device.key -subj "/CN=device-0001" -outform DER | base64 > renew.csr.b64
  curl -sS --cacert $CA_PEM --cert device.crt --key device.key \\
      -H 'Content-Type: application/pkcs10' --data-binary @renew.csr.b64 \\
      https://$HTTPS/.well-known/est/simplereenroll -o renewed.p7.b64

More tokens: ./build/fleetpki token create --dir $DIR --label default --uses 10
Labels, auth modes and more recipes: docs/est.md

EOF
exec ./build/fleetpki serve --dir "$DIR"

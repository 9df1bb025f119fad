# p11_lib.sh - a SoftHSM2 token made for the test (source lib.sh first).
#
# p11_token LABEL: SOFTHSM2_CONF pointing at $T/softhsm (tokens live only
#   there), a token LABEL with user PIN 1234 (FP_PKCS11_PIN exported), and
#   P11_MODULE / P11_URI (pkcs11:token=LABEL?module-path=...).  Exits 77
#   when SoftHSM2 is not installed.
P11_MODULE=${P11_MODULE:-}
p11_find_module() {
    local m
    for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
        [ -r "$m" ] && { echo "$m"; return 0; }
    done
    return 1
}

p11_token() {
    local label=$1
    command -v softhsm2-util >/dev/null || { echo "skip: softhsm2-util not installed"; exit 77; }
    P11_MODULE=$(p11_find_module) || { echo "skip: libsofthsm2.so not found"; exit 77; }
    mkdir -p "$T/softhsm/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$T/softhsm/tokens" >"$T/softhsm/softhsm2.conf"
    export SOFTHSM2_CONF=$T/softhsm/softhsm2.conf
    softhsm2-util --init-token --free --label "$label" --so-pin 5678 --pin 1234 >/dev/null
    export FP_PKCS11_PIN=1234
    P11_URI="pkcs11:token=$label?module-path=$P11_MODULE"
}

# p11_objects: what pkcs11-tool lists in the token (logged in).
p11_objects() {
    pkcs11-tool --module "$P11_MODULE" --token-label "$1" --login --pin 1234 -O 2>/dev/null
}

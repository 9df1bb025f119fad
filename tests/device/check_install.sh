#!/usr/bin/env bash
# libfleetpki-device packaging: the shared library exports the public API
# and nothing else (-fvisibility=hidden + FP_DEVICE_API), and an installed
# copy is found through pkg-config (fleetpki-device.pc) by a program that
# includes <fleetpki/device.h> and links both ways (shared and static).
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
B=$1 S=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/fpdev-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
command -v nm >/dev/null && command -v pkg-config >/dev/null || { echo "skip: needs nm and pkg-config"; exit 77; }

so=$(ls "$B"/src/device/libfleetpki-device.so.*.*.* | head -1)
# every public function in the header must be exported, and only those
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | sort >"$T/exported"
cat "$S/include/fleetpki/device.h" "$S/include/fleetpki/firmware.h" | grep -o 'FP_DEVICE_API [^(]*(' | sed 's/($//; s/.*[ *]//' | grep '^fp_' | sort >"$T/declared"
if ! diff -u "$T/declared" "$T/exported"; then
    echo "FAIL - exported symbols differ from the FP_DEVICE_API declarations" >&2
    exit 1
fi
echo "ok - exports exactly the $(wc -l <"$T/declared") public functions"

cmake --install "$B" --prefix "$T/prefix" --component Unspecified >/dev/null
export PKG_CONFIG_PATH=$T/prefix/lib/pkgconfig:$T/prefix/lib/$(gcc -print-multiarch 2>/dev/null)/pkgconfig
pkg-config --exists fleetpki-device || { echo "FAIL - pkg-config does not find fleetpki-device" >&2; exit 1; }
cat >"$T/use.c" <<'C'
#include <stdio.h>
#include <fleetpki/device.h>
int main(void)
{
    fp_device *d = fp_device_new();
    int rc = fp_device_cacerts(d, NULL, NULL); /* nothing configured: an error, no crash */
    printf("%s %s\n", fp_device_backend(), fp_device_err_name(rc));
    fp_device_free(d);
    return rc == FP_DEVICE_ERR_ARG ? 0 : 1;
}
C
cc -o "$T/use" "$T/use.c" $(pkg-config --cflags --libs fleetpki-device)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir fleetpki-device) "$T/use" >"$T/out"
grep -q 'bad-argument' "$T/out" || { cat "$T/out" >&2; echo "FAIL - shared link" >&2; exit 1; }
echo "ok - a program builds and runs against the installed shared library ($(cat "$T/out"))"
cc -o "$T/use-static" "$T/use.c" $(pkg-config --cflags fleetpki-device) \
    "$(pkg-config --variable=libdir fleetpki-device)/libfleetpki-device.a" $(pkg-config --static --libs-only-l fleetpki-device | sed 's/-lfleetpki-device//')
"$T/use-static" >/dev/null || { echo "FAIL - static link" >&2; exit 1; }
echo "ok - and statically"

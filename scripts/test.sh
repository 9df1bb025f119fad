#!/usr/bin/env bash
# Builds fleetpki and runs every test: the normal build (warnings are
# errors) and an ASan+UBSan build running the whole suite again.
# Installs its own Debian packages first.  Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

jobs=$(nproc)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

echo "== build (gcc, -Werror) =="
cmake -S . -B build -DFP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== build (clang 14, -Werror, compile only: a second compiler's warnings) =="
CC=clang-14 cmake -S . -B build-clang -DFP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-clang -j"$jobs"

echo "== build (ASan + UBSan) =="
cmake -S . -B build-asan -DFP_WERROR=ON -DFP_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan + UBSan =="
ctest --test-dir build-asan --output-on-failure -j"$jobs"

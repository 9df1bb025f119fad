#!/usr/bin/env python3
"""memscan.py PID KEYFILE: does process PID hold KEYFILE's private key?

Reads the private scalar of an EC key (or Ed25519 seed) with the
`cryptography` package and searches every readable mapping of
/proc/PID/mem for it, big-endian (as in the DER) and little-endian (as in
OpenSSL's BIGNUM limbs on a little-endian machine).
Prints "found" or "absent"; exit 0.  Exit 2 when the memory cannot be read
(not root, or ptrace forbidden), so the caller can skip.
"""
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def secret_bytes(path):
    key = serialization.load_pem_private_key(open(path, "rb").read(), password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        n = (key.curve.key_size + 7) // 8
        return key.private_numbers().private_value.to_bytes(n, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    raise SystemExit("memscan: unsupported key type")


def main():
    pid, keyfile = sys.argv[1], sys.argv[2]
    secret = secret_bytes(keyfile)
    needles = [secret, secret[::-1]]
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError as e:
        print(f"memscan: {e}", file=sys.stderr)
        sys.exit(2)
    readable = 0
    chunk = 16 << 20
    overlap = max(len(n) for n in needles) - 1
    for line in maps:
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if fields[1][0] != "r" or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
            continue
        # sanitizer shadow memory: terabytes of reserved zero pages, no data
        if hi - lo > (4 << 30):
            continue
        pos, tail = lo, b""
        while pos < hi:
            n = min(chunk, hi - pos)
            try:
                mem.seek(pos)
                data = mem.read(n)
            except OSError:
                data = b""
            pos += n
            if not data:
                tail = b""
                continue
            readable += 1
            window = tail + data
            if any(nd in window for nd in needles):
                print("found")
                return
            tail = window[-overlap:] if overlap > 0 else b""
    if readable == 0:
        print("memscan: no readable mapping", file=sys.stderr)
        sys.exit(2)
    print("absent")


main()

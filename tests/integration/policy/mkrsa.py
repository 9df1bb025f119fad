# mkrsa.py E BITS OUT.der: an RSA private key (PKCS#1 RSAPrivateKey, DER)
# with public exponent E (a Python expression, e.g. "2**256+1"); primes
# from `openssl prime -generate`.  Test client code only.
import math, subprocess, sys
e = eval(sys.argv[1], {"__builtins__": {}})
bits = int(sys.argv[2])
def prime(b):
    return int(subprocess.check_output(["openssl", "prime", "-generate", "-bits", str(b)]).strip())
while True:
    p, q = prime(bits // 2), prime(bits // 2)
    phi = (p - 1) * (q - 1)
    if p != q and math.gcd(e, phi) == 1:
        break
n = p * q
d = 1 if e == 1 else pow(e, -1, phi)
def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b
def der_int(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # leading 00 keeps it positive
    return b"\x02" + der_len(len(b)) + b
body = b"".join(der_int(v) for v in (0, n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)))
open(sys.argv[3], "wb").write(b"\x30" + der_len(len(body)) + body)

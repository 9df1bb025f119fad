#!/usr/bin/python3
"""suit_indep.py - an independent SUIT/COSE implementation for the tests:
Python's cbor2 and cryptography, none of fleetpki's code.

  verify ENVELOPE IMAGE ANCHOR.pem   check a SUIT envelope the way
        draft-ietf-suit-manifest and RFC 9052 describe it: tag 107, the
        authentication wrapper's SUIT_Digest over the bstr-wrapped
        manifest, the COSE_Sign1 ES256 signature (Sig_structure of RFC 9052
        4.4, detached payload = the SUIT_Digest) with the x5chain (RFC 9360)
        signer, the chain up to ANCHOR, and the image's SHA-256 and size.
        Prints one JSON object (sequence, vendor, class, version) on success.
  make --key K --chain C.pem --image I --seq N --vendor U --class U [--version V]
       [--alg -7] [--no-eku-check] OUT
        write an envelope signed by K with the certificates of C.pem as
        x5chain: envelopes fleetpki's signer would refuse to make (wrong
        anchor, no codeSigning, ...), for the device's refusal tests.
"""
import argparse
import hashlib
import json
import re
import sys
import uuid

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def die(msg):
    print("suit_indep: " + msg, file=sys.stderr)
    sys.exit(1)


def sig_structure(protected, payload):
    return cbor2.dumps(["Signature1", protected, b"", payload])


def verify(args):
    env_bytes = open(args.envelope, "rb").read()
    image = open(args.image, "rb").read()
    anchor = x509.load_pem_x509_certificate(open(args.anchor, "rb").read())
    env = cbor2.loads(env_bytes)
    if not isinstance(env, cbor2.CBORTag) or env.tag != 107:
        die("not a tagged SUIT_Envelope (107)")
    env = env.value
    auth = cbor2.loads(env[2])
    manifest_bstr = env[3]
    digest_item = auth[0]
    alg, mdigest = cbor2.loads(digest_item)
    if alg != -16:
        die("manifest digest algorithm %r is not SHA-256" % alg)
    # the digest covers the bstr-wrapped manifest
    if hashlib.sha256(cbor2.dumps(manifest_bstr)).digest() != mdigest:
        die("manifest digest mismatch")
    sign1 = cbor2.loads(auth[1])
    if not isinstance(sign1, cbor2.CBORTag) or sign1.tag != 18:
        die("authentication block is not a COSE_Sign1_Tagged")
    protected, unprotected, payload, signature = sign1.value
    phdr = cbor2.loads(protected)
    if phdr.get(1) != -7:
        die("alg is not ES256")
    if payload is not None:
        die("payload not detached")
    x5 = phdr.get(33, unprotected.get(33))
    if isinstance(x5, bytes):
        x5 = [x5]
    certs = [x509.load_der_x509_certificate(c) for c in x5]
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    certs[0].public_key().verify(utils.encode_dss_signature(r, s),
                                 sig_structure(protected, digest_item),
                                 ec.ECDSA(hashes.SHA256()))
    # the chain: each certificate signed by the next, the last by the anchor
    issuers = certs[1:] + [anchor]
    for c, i in zip(certs, issuers):
        if c.issuer != i.subject:
            die("chain broken at %s" % c.subject.rfc4514_string())
        i.public_key().verify(c.signature, c.tbs_certificate_bytes,
                              ec.ECDSA(c.signature_hash_algorithm))
    eku = certs[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        die("signer lacks codeSigning")
    man = cbor2.loads(manifest_bstr)
    common = cbor2.loads(man[3])
    shared = cbor2.loads(common[4])
    params = {}
    for i in range(0, len(shared), 2):
        if shared[i] == 20:
            params.update(shared[i + 1])
    ialg, idigest = cbor2.loads(params[3])
    if ialg != -16 or hashlib.sha256(image).digest() != idigest:
        die("image digest mismatch")
    if params[14] != len(image):
        die("image size mismatch")
    version = ""
    if 23 in man:
        text = cbor2.loads(man[23])
        for k, v in text.items():
            if isinstance(v, dict) and 6 in v:
                version = v[6]
    print(json.dumps({"sequence": man[2], "vendor": str(uuid.UUID(bytes=params[1])),
                      "class": str(uuid.UUID(bytes=params[2])), "size": params[14],
                      "version": version}))


def make(args):
    image = open(args.image, "rb").read()
    key = serialization.load_pem_private_key(open(args.key, "rb").read(), None)
    pem = open(args.chain, "rb").read()
    # (cryptography 38, Debian 12: no load_pem_x509_certificates yet)
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    certs = [x509.load_pem_x509_certificate(b) for b in blocks]
    x5 = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    digest = cbor2.dumps([-16, hashlib.sha256(image).digest()])
    shared = cbor2.dumps([20, {1: uuid.UUID(args.vendor).bytes, 2: uuid.UUID(args.cls).bytes,
                               3: digest, 14: len(image)}, 1, 15, 2, 15])
    common = cbor2.dumps({2: [[b"\x00"]], 4: shared})
    manifest = cbor2.dumps({1: 1, 2: args.seq, 3: common,
                            7: cbor2.dumps([3, 15]),
                            23: cbor2.dumps({(b"\x00",): {6: args.version}})})
    mdigest = cbor2.dumps([-16, hashlib.sha256(cbor2.dumps(manifest)).digest()])
    protected = cbor2.dumps({1: args.alg, 33: x5 if len(x5) > 1 else x5[0]})
    der = key.sign(sig_structure(protected, mdigest), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sign1 = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, None, sig]))
    env = cbor2.dumps(cbor2.CBORTag(107, {2: cbor2.dumps([mdigest, sign1]), 3: manifest}))
    open(args.out, "wb").write(env)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("envelope")
    v.add_argument("image")
    v.add_argument("anchor")
    m = sub.add_parser("make")
    m.add_argument("--key", required=True)
    m.add_argument("--chain", required=True)
    m.add_argument("--image", required=True)
    m.add_argument("--seq", type=int, required=True)
    m.add_argument("--vendor", required=True)
    m.add_argument("--class", dest="cls", required=True)
    m.add_argument("--version", default="0.0.0")
    m.add_argument("--alg", type=int, default=-7)
    m.add_argument("out")
    a = ap.parse_args()
    try:
        verify(a) if a.cmd == "verify" else make(a)
    except Exception as e:  # any parse or crypto failure is a refusal
        die("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()

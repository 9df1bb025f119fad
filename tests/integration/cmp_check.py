#!/usr/bin/python3
"""cmp_check.py FILE: decode a CMP PKIMessage (DER) with pyasn1's strict DER
decoder and the RFC 4210 module of pyasn1-modules, independently of OpenSSL,
and print one line: body=<choice> status=<n|-> failinfo=<bit names|->
extracerts=<n> capubs=<n> protected=<0|1> text=<statusString|->.
Exit 2 when the bytes are not exactly one PKIMessage; 77 when the parser is
not installed (python3-pyasn1-modules)."""
import sys
try:
    import importlib
    from pyasn1.codec.der import decoder
    from pyasn1.type import namedtype, univ
    from pyasn1_modules import rfc2459, rfc2511, rfc4210
except ImportError:
    sys.exit(77)

# pyasn1-modules 0.2.8 stubs GeneralName in rfc2511 as an OCTET STRING, so
# the CertId of an rp (RFC 4210 5.3.10) would not decode: give CertId the
# real GeneralName (rfc2459) and build the CMP module again over it.
class CertId(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType('issuer', rfc2459.GeneralName()),
        namedtype.NamedType('serialNumber', univ.Integer()))

rfc2511.CertId = CertId
rfc4210 = importlib.reload(rfc4210)

FAIL_BITS = ["badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId",
             "badDataFormat", "wrongAuthority", "incorrectData", "missingTimeStamp",
             "badPOP", "certRevoked", "certConfirmed", "wrongIntegrity",
             "badRecipientNonce", "timeNotAvailable", "unacceptedPolicy",
             "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
             "badCertTemplate", "signerNotTrusted", "transactionIdInUse",
             "unsupportedVersion", "notAuthorized", "systemUnavail",
             "systemFailure", "duplicateCertReq"]

def si_fields(si):
    status = int(si["status"])
    fi = "-"
    if si["failInfo"].hasValue():
        bits = [FAIL_BITS[i] if i < len(FAIL_BITS) else str(i)
                for i, b in enumerate(si["failInfo"]) if b]
        fi = ",".join(bits) or "-"
    text = "-"
    if si["statusString"].hasValue():
        text = " | ".join(str(s) for s in si["statusString"])
    return status, fi, text

def main():
    data = open(sys.argv[1], "rb").read()
    try:
        msg, rest = decoder.decode(data, asn1Spec=rfc4210.PKIMessage())
    except Exception as e:  # noqa: BLE001 - any decoding failure is the answer
        print("not a PKIMessage: %s" % e)
        sys.exit(2)
    if rest:
        print("trailing octets after the PKIMessage")
        sys.exit(2)
    body = msg["body"]
    name = body.getName()
    name = {"gen": "genp"}.get(name, name)  # pyasn1-modules 0.2.8 names genp "gen"
    status, fi, text, capubs = "-", "-", "-", 0
    inner = body.getComponent()
    if name in ("ip", "cp", "kup"):
        resp = inner["response"][0]
        status, fi, text = si_fields(resp["status"])
        if inner["caPubs"].hasValue():
            capubs = len(inner["caPubs"])
    elif name == "rp":
        status, fi, text = si_fields(inner["status"][0])
    elif name == "error":
        status, fi, text = si_fields(inner["pKIStatusInfo"])
    extra = len(msg["extraCerts"]) if msg["extraCerts"].hasValue() else 0
    prot = 1 if msg["protection"].hasValue() else 0
    print("body=%s status=%s failinfo=%s extracerts=%d capubs=%d protected=%d text=%s"
          % (name, status, fi, extra, capubs, prot, text.replace(" ", "_")))

main()

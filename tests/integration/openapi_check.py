#!/usr/bin/env python3
"""openapi_check.py - docs/openapi.json against a running server, both ways.

  openapi_check.py DOC SRC_DIR BASE_URL ADMIN_KEY PARAMS_JSON

1. Every route the admin API mounts (the route tables of src/api/*.c: every
   module there is mounted under /api/v1, docs/api.md) is documented, with
   its method.
2. Every documented operation answers as documented: called with the admin
   key (path parameters from PARAMS_JSON, per parameter name, with
   "devices_project" for paths under /devices; the body from the
   requestBody example), its status is a documented one, the Content-Type
   is the documented media type for that status, and the required members
   of the documented schema are present (top level and each items[]).
   GET operations must succeed (2xx): the fixtures exist.  Each secured
   operation is also called without a key: 401 must be documented and
   answered as documented.
   An operation whose module is not in this tree (x-fleetpki-module naming
   a module that mounts no route here) is reported and skipped.
"""
import glob
import json
import re
import ssl
import sys
import urllib.error
import urllib.request

doc_path, src, base, key, params_path = sys.argv[1:6]
doc = json.load(open(doc_path))
params = json.load(open(params_path))
failures = []


def resolve(o):
    while isinstance(o, dict) and "$ref" in o:
        node = doc
        for part in o["$ref"].lstrip("#/").split("/"):
            node = node[part]
        o = node
    return o


# ---- 1. mounted -> documented ----
ROW = re.compile(r'^\s*\{((?:FP_HTTP_[A-Z]+\s*\|?\s*)+),\s*"([^"]+)"')
mounted = set()
for f in glob.glob(src + "/src/api/*.c"):
    for line in open(f):
        m = ROW.match(line)
        if m is None:
            continue
        for meth in re.findall(r"FP_HTTP_([A-Z]+)", m.group(1)):
            if meth in ("TLS", "PLAIN"):
                continue
            mounted.add((meth.lower(), m.group(2)))
if not mounted:
    sys.exit("FAIL - no route rows found in src/api/*.c")
documented = {(m, p) for p, item in doc["paths"].items() for m in item
              if m in ("get", "post", "put", "delete", "head", "patch")}
for meth, path in sorted(mounted - documented):
    failures.append(f"mounted but not documented: {meth.upper()} /api/v1{path}")
print(f"ok - {len(mounted)} mounted routes checked against the document")

# ---- 2. documented -> answers ----
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def call(method, url, body, with_key):
    headers = {}
    data = None
    if with_key:
        headers["Authorization"] = "Bearer " + key
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif method in ("POST", "PUT"):
        data = b""
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def check_schema(where, schema, value):
    schema = resolve(schema)
    if schema.get("type") == "object" or "required" in schema:
        if not isinstance(value, dict):
            failures.append(f"{where}: not an object")
            return
        for r in schema.get("required", []):
            if r not in value:
                failures.append(f"{where}: required member '{r}' missing")
        for name, sub in schema.get("properties", {}).items():
            if name in value and isinstance(value[name], (dict, list)):
                check_schema(f"{where}.{name}", sub, value[name])
    elif schema.get("type") == "array" and isinstance(value, list):
        for i, v in enumerate(value[:50]):
            check_schema(f"{where}[{i}]", schema.get("items", {}), v)


def check_answer(where, op, status, ctype, body):
    responses = op["responses"]
    if str(status) not in responses:
        failures.append(f"{where}: status {status} not documented ({sorted(responses)}): {body[:200]!r}")
        return
    resp = resolve(responses[str(status)])
    content = resp.get("content")
    media = ctype.split(";")[0].strip().lower()
    if not content:
        if body:
            failures.append(f"{where}: {status} documents no body, got {len(body)} bytes")
        return
    if media not in content:
        failures.append(f"{where}: {status} Content-Type {media!r}, documented {sorted(content)}")
        return
    if media.endswith("json"):
        try:
            value = json.loads(body)
        except ValueError:
            failures.append(f"{where}: {status} body is not JSON")
            return
        check_schema(f"{where} {status}", content[media].get("schema", {}), value)


mounted_modules = {"device": any(p == "/device" for _, p in mounted)}
order = {"get": 0, "put": 1, "post": 2, "delete": 3}
ops = sorted(((m, p) for m, p in documented), key=lambda mp: (order.get(mp[0], 9), mp[1]))
checked = 0
for meth, path in ops:
    op = doc["paths"][path][meth]
    where = f"{meth.upper()} {path}"
    module = op.get("x-fleetpki-module")
    if module is not None and not mounted_modules.get(module, False):
        print(f"# skip - {where}: module '{module}' is not in this tree")
        continue
    url_path = path
    for name in re.findall(r"\{(\w+)\}", path):
        pname = "devices_project" if name == "project" and "/devices" in path else name
        url_path = url_path.replace("{" + name + "}", urllib.request.quote(params[pname], safe=""))
    body = None
    if "requestBody" in op:
        body = next(iter(op["requestBody"]["content"].values())).get("example")
    security = op.get("security", doc.get("security"))
    secured = security != []
    if security == [{"mutualTLS": []}]:
        # a device's own endpoint: without a client certificate it must
        # answer the documented 401; with one it is test_registry.sh's
        status, ctype, rbody = call(meth.upper(), base + url_path, body, False)
        if status != 401:
            failures.append(f"{where} without a client certificate: {status}, want 401")
        else:
            check_answer(where + " (no certificate)", op, status, ctype, rbody)
        checked += 1
        print(f"ok - {where} without a client certificate -> {status} (with one: test_registry.sh)")
        continue
    if secured:
        status, ctype, rbody = call(meth.upper(), base + url_path, body, False)
        if status != 401:
            failures.append(f"{where} without a key: {status}, want 401")
        else:
            check_answer(where + " (no key)", op, status, ctype, rbody)
    status, ctype, rbody = call(meth.upper(), base + url_path, body, secured)
    check_answer(where, op, status, ctype, rbody)
    if meth == "get" and not 200 <= status < 300:
        failures.append(f"{where}: a GET of an existing fixture answered {status}: {rbody[:200]!r}")
    checked += 1
    print(f"ok - {where} -> {status}")

for f in failures:
    print("FAIL - " + f, file=sys.stderr)
print(f"{checked} documented operations called, {len(failures)} failures")
sys.exit(1 if failures else 0)

#!/usr/bin/env python3
"""bench/abuse.py - connection abusers and a well-behaved measuring client
for bench/run-abuse.sh (python3 stdlib only; loopback targets only).

  abuse.py flood --tls H:P --plain H:P --idle N --slow N --ready FILE
                 --stop FILE --max-seconds S [--addr-base B]
      N idle connections (nothing sent, half on each listener) and N slow
      ones trickling one byte per second: on the TLS listener the bytes of
      a real ClientHello, on the plain one a request line and header that
      never ends.  Source addresses 127.0.0.B, B+1, ... (250 connections
      each at most).  Every connection the server closes is reopened at
      once.  Touches READY when all are opened, exits when STOP exists or
      after S seconds, printing one FLOOD key=value line.

  abuse.py client --tls H:P --plain H:P --cafile F --requests N
                  --seconds S [--source A] [--timeout T]
      N sequential requests of each kind, alternated and paced over S
      seconds: a new TCP + TLS connection with GET
      /.well-known/est/cacerts, and a new plain connection with GET
      /crl/issuing.crl; each is one request with Connection: close, read to
      the end, counted as good only if the status is 200 and the body has
      the Content-Length announced.  Prints one CLIENT key=value line with
      p50/p99/max in ms per kind and over both (successes only), errors,
      and requests not sent because 3 x S seconds passed; why= lists each
      failure as kind:cause@milliseconds into the request.
"""
import argparse
import os
import resource
import selectors
import socket
import ssl
import sys
import time

LOOPBACK = "127."


def hostport(s):
    h, p = s.rsplit(":", 1)
    if not h.startswith(LOOPBACK):
        sys.exit("abuse.py: loopback targets only, not %s" % h)
    return h, int(p)


def client_hello(host):
    """The bytes of a real TLS ClientHello, made with a memory BIO."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def flood(a):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.idle + a.slow + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    tls, plain = hostport(a.tls), hostport(a.plain)
    hello = client_hello(tls[0])
    # a header block that is never finished (10 s header deadline applies)
    header = b"GET /crl/issuing.crl HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096
    sel = selectors.DefaultSelector()
    # slot i: (kind, target, payload or None, source address)
    slots = []
    for i in range(a.idle):
        slots.append(("idle", (tls, plain)[i % 2], None))
    for i in range(a.slow):
        slots.append(("slow", (tls, plain)[i % 2], (hello, header)[i % 2]))
    n_addr = max(1, -(-len(slots) // 250))
    conns = {}      # slot -> [socket, bytes sent]
    stats = {"opened": 0, "open_fail": 0, "closed_by_server": 0, "bytes": 0}

    def open_slot(i):
        kind, target, _ = slots[i]
        s = socket.socket()
        try:
            s.bind(("127.0.0.%d" % (a.addr_base + i % n_addr), 0))
            s.setblocking(False)
            s.connect_ex(target)
        except OSError:
            s.close()
            stats["open_fail"] += 1
            return False
        stats["opened"] += 1
        conns[i] = [s, 0]
        sel.register(s, selectors.EVENT_READ, i)
        return True

    pending = []  # slots that failed to open, retried each pass
    for i in range(len(slots)):
        if not open_slot(i):
            pending.append(i)
    open(a.ready, "w").close()
    start = time.monotonic()
    end = start + a.max_seconds
    next_tick = start
    while time.monotonic() < end and not os.path.exists(a.stop):
        for key, _ in sel.select(0.1):
            i = key.data
            s = conns[i][0]
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                continue    # e.g. the server's alert or 408; wait for the close
            sel.unregister(s)
            s.close()
            del conns[i]
            stats["closed_by_server"] += 1
            if not open_slot(i):
                pending.append(i)
        if pending:
            retry, pending[:] = pending[:], []
            for i in retry:
                if not open_slot(i):
                    pending.append(i)
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + 1.0
            for i, c in list(conns.items()):
                payload = slots[i][2]
                if payload is None:
                    continue
                b = payload[c[1] % len(payload):c[1] % len(payload) + 1]
                try:
                    c[0].send(b)
                    c[1] += 1
                    stats["bytes"] += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass    # reset: the read side sees it and reopens
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("FLOOD open_at_end=%d opened=%d open_fail=%d closed_by_server=%d "
          "trickled_bytes=%d addresses=%d cpu_s=%.2f" %
          (len(conns), stats["opened"], stats["open_fail"], stats["closed_by_server"],
           stats["bytes"], n_addr, ru.ru_utime + ru.ru_stime))
    for c in conns.values():
        c[0].close()


def one_request(target, path, ctx, source, timeout):
    """One connection, one GET, read to EOF; returns None if good, else why."""
    s = socket.create_connection(target, timeout=timeout, source_address=(source, 0))
    # as loadgen does: without it, Nagle holds the request behind the
    # handshake's last flight until the delayed ACK (~40 ms per request)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname=target[0])
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
                   (path, target[0])).encode())
        buf = bytearray()
        while True:
            try:
                d = s.recv(65536)
            except ssl.SSLError as e:
                if "UNEXPECTED_EOF" in str(e):
                    break
                raise
            if not d:
                break
            buf += d
    finally:
        s.close()
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep:
        return "no header"
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) < 2 or parts[1] != b"200":
        return "status %s" % (parts[1].decode(errors="replace") if len(parts) > 1 else "?")
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length" and int(v) != len(body):
            return "short body"
    if not body:
        return "empty body"
    return None


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))]


def client(a):
    tls, plain = hostport(a.tls), hostport(a.plain)
    ctx = ssl.create_default_context(cafile=a.cafile)
    ctx.check_hostname = False      # the CA's server name is not "127.0.0.1"
    kinds = [("tls", tls, "/.well-known/est/cacerts", ctx),
             ("plain", plain, "/crl/issuing.crl", None)]
    lat = {"tls": [], "plain": []}
    err = {"tls": 0, "plain": 0}
    why = {}
    total = 2 * a.requests
    gap = a.seconds / total
    start = time.monotonic()
    hard_end = start + 3 * a.seconds
    sent = 0
    for n in range(total):
        now = time.monotonic()
        if now > hard_end:
            break
        due = start + n * gap
        if due > now:
            time.sleep(due - now)
        name, target, path, c = kinds[n % 2]
        t0 = time.monotonic()
        try:
            bad = one_request(target, path, c, a.source, a.timeout)
        except (OSError, ValueError) as e:
            bad = type(e).__name__
        dt = (time.monotonic() - t0) * 1000.0
        sent += 1
        if bad is None:
            lat[name].append(dt)
        else:
            # kind, cause and how long into the request it failed
            err[name] += 1
            why["%s:%s@%.0fms" % (name, bad.replace(" ", "_"), dt)] = None
    both = lat["tls"] + lat["plain"]
    out = ["CLIENT sent=%d not_sent=%d ok=%d err=%d" % (sent, total - sent, len(both),
                                                        err["tls"] + err["plain"])]
    for name, xs in (("tls", lat["tls"]), ("plain", lat["plain"]), ("all", both)):
        out.append("%s_p50=%.1f %s_p99=%.1f %s_max=%.1f %s_err=%d" %
                   (name, pct(xs, 50), name, pct(xs, 99), name, max(xs) if xs else float("nan"),
                    name, err.get(name, err["tls"] + err["plain"])))
    out.append("why=%s" % (",".join(why) or "-"))
    print(" ".join(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood")
    f.add_argument("--tls", required=True)
    f.add_argument("--plain", required=True)
    f.add_argument("--idle", type=int, default=0)
    f.add_argument("--slow", type=int, default=0)
    f.add_argument("--addr-base", type=int, default=3)
    f.add_argument("--ready", required=True)
    f.add_argument("--stop", required=True)
    f.add_argument("--max-seconds", type=float, default=120)
    c = sub.add_parser("client")
    c.add_argument("--tls", required=True)
    c.add_argument("--plain", required=True)
    c.add_argument("--cafile", required=True)
    c.add_argument("--requests", type=int, default=200)
    c.add_argument("--seconds", type=float, default=20)
    c.add_argument("--source", default="127.0.0.2")
    c.add_argument("--timeout", type=float, default=15)
    a = p.parse_args()
    if a.cmd == "flood":
        if a.addr_base < 3 or a.addr_base > 200:
            sys.exit("abuse.py: --addr-base 3..200 (127.0.0.2 is the measured client)")
        flood(a)
    else:
        client(a)


if __name__ == "__main__":
    main()

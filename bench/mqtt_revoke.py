#!/usr/bin/env python3
"""mqtt_revoke.py - revoke-to-disconnect times for bench/run-mqtt.sh.

Starts `mqtt_load hold` (N devices connected to the broker with the
fleetpki plugin), then revokes devices one at a time with `fleetpki
revoke` and waits for the broker to close that device's connection.  For
each revocation it records the time from starting `fleetpki revoke` and
from its return (the revocation committed) to the disconnect seen by the
client.  Prints one RESULT line with p50/p99/max in milliseconds.

  mqtt_revoke.py FLEETPKI DATADIR MANIFEST.csv COUNT -- MQTT_LOAD-ARGS...
"""
import csv
import random
import subprocess
import sys
import time


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def main():
    sep = sys.argv.index("--")
    fleetpki, datadir, manifest, count = sys.argv[1:sep]
    count = int(count)
    load = sys.argv[sep + 1:]
    serials = {}
    with open(manifest) as f:
        for row in csv.DictReader(f):
            serials[row["name"]] = row["serial"]
    proc = subprocess.Popen(load, stdout=subprocess.PIPE, text=True, bufsize=1)
    line = proc.stdout.readline().strip()
    if line != "ready":
        sys.exit("mqtt_load hold did not get ready: %r" % line)
    from_start, from_commit, cli, missed = [], [], [], 0
    deadline_total = time.time() + 900
    for i in range(count):
        name = "dev-%d" % i
        # a random pause, so that revocations do not fall in step with the
        # plugin's poll period (which would measure one phase of it only)
        time.sleep(random.uniform(0, 0.3))
        t0 = time.time()
        subprocess.run([fleetpki, "revoke", serials[name], "--dir", datadir,
                        "--reason", "keyCompromise"], check=True,
                       stdout=subprocess.DEVNULL)
        t1 = time.time()
        gone = None
        while gone is None:
            line = proc.stdout.readline()
            if not line:
                break
            parts = line.split()
            if len(parts) == 3 and parts[0] == "gone":
                if parts[1] == name:
                    gone = int(parts[2]) / 1e9
                else:
                    missed += 1  # another device went: reported below
        if gone is None:
            sys.exit("the client exited before %s was disconnected" % name)
        from_start.append((gone - t0) * 1000)
        from_commit.append((gone - t1) * 1000)
        cli.append((t1 - t0) * 1000)
        if time.time() > deadline_total:
            print("stopping after %d revocations (time limit)" % (i + 1), file=sys.stderr)
            break
    proc.terminate()
    n = len(from_start)
    print("RESULT revocations=%d p50_ms=%.0f p99_ms=%.0f max_ms=%.0f "
          "commit_p50_ms=%.0f commit_p99_ms=%.0f commit_max_ms=%.0f cli_p50_ms=%.0f "
          "over_1s=%d unexpected=%d" % (
              n, pct(from_start, 50), pct(from_start, 99), max(from_start),
              pct(from_commit, 50), pct(from_commit, 99), max(from_commit),
              pct(cli, 50), sum(1 for x in from_start if x > 1000), missed))


if __name__ == "__main__":
    main()

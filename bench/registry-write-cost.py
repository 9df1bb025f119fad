#!/usr/bin/env python3
"""bench/registry-write-cost.py - the store cost of the registry's writes
on copies of a populated 1,000,000-device store, two layouts side by side
(issue 10: device_tags' copies of the device columns, kept by triggers,
make every write of a tagged device rewrite its tag rows).

    bench/registry-write-cost.py OLD.db NEW.db [ROUNDS]

OLD.db and NEW.db: copies of one store made by bench/populate_devices
(every device has 2 tags), NEW.db opened once by the newer fleetpki so it
has the newer schema.  The statements are the ones src/store/
sqlite_devices.c runs, in transactions shaped as it makes them:
  touch   the batched last-seen flush: one transaction of 1,000
          "UPDATE devices SET last_seen" of tagged devices
  state   a state change: one transaction per device (100 devices)
  tag     a tag set: INSERT OR REPLACE INTO device_tags, then the row's
          JSON copy rewritten, one transaction per device (100 devices)
  contact first contact: INSERT OR IGNORE INTO devices of a new device
          (no tags), synchronous = NORMAL, one transaction each (1,000)
  touch0  the last-seen flush of those untagged devices (1,000)
Prints the CPU time of this process (user + system) per statement or per
device (and the wall time of the whole last-seen flush), the median over ROUNDS rounds that alternate the two stores
(OLD NEW, NEW OLD, ...): the machine is shared, one run says little.
Python's own cost per call is the same for both stores.  Each round uses
devices no earlier round touched (WAL, synchronous = FULL, as the server).
"""
import sqlite3
import statistics
import sys
import time

TAG_JSON = ("UPDATE devices SET tags = coalesce((SELECT json_group_object(key, value) FROM"
            " (SELECT key, value FROM device_tags INDEXED BY sqlite_autoindex_device_tags_1"
            " WHERE project = ?1 AND name = ?2 ORDER BY key)), '{}')"
            " WHERE project = ?1 AND name = ?2")


def connect(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA busy_timeout = 30000")
    return db


def cpu():
    return time.process_time()


# every invocation picks devices and values no earlier one wrote, so that
# each UPDATE changes its row (an UPDATE that changes nothing costs less)
RUN = time.time_ns() // 1000
OFFSET = RUN % 100_003


def name(i, projects=10, n=1_000_000):
    i = (i + OFFSET) % n
    return f"bench-{i % projects}", f"dev-{i % projects}-{i // projects:08d}"


WALL = {}


def touch(db, base, n=1000, key=None):
    t0, w0 = cpu(), time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    for i in range(base, base + n):
        p, d = name(i * 37)
        db.execute("UPDATE devices SET last_seen = ?3 WHERE project = ?1 AND name = ?2"
                   " AND last_seen < ?3", (p, d, RUN + base))
    db.execute("COMMIT")
    WALL.setdefault(key, []).append(time.perf_counter() - w0)
    return (cpu() - t0) / n


def state(db, base, n=100):
    t0 = cpu()
    for i in range(base, base + n):
        p, d = name(i * 41 + 3)
        db.execute("BEGIN IMMEDIATE")
        db.execute("SELECT state FROM devices WHERE project = ? AND name = ?", (p, d)).fetchall()
        db.execute("UPDATE devices SET state = CASE state WHEN 1 THEN 0 ELSE 1 END"
                   " WHERE project = ? AND name = ?", (p, d))
        db.execute("COMMIT")
    return (cpu() - t0) / n


def tag(db, base, n=100):
    t0 = cpu()
    for i in range(base, base + n):
        p, d = name(i * 43 + 5)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO device_tags (project, name, key, value)"
                   " VALUES (?1, ?2, 'floor', ?3)", (p, d, f"f{RUN}"))
        db.execute(TAG_JSON, (p, d))
        db.execute("COMMIT")
    return (cpu() - t0) / n


def touch_untagged(db, base, n=1000):
    """the flush for devices without tags (those contact() made)"""
    t0 = cpu()
    db.execute("BEGIN IMMEDIATE")
    for i in range(base, base + n):
        db.execute("UPDATE devices SET last_seen = ?2 WHERE project = 'bench-3' AND name = ?1"
                   " AND last_seen < ?2", (f"new-{RUN}-{i:08d}", RUN + base))
    db.execute("COMMIT")
    return (cpu() - t0) / n


def contact(db, base, n=1000):
    db.execute("PRAGMA synchronous = NORMAL")
    t0 = cpu()
    for i in range(base, base + n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR IGNORE INTO devices (project, name, state, first_seen, last_seen)"
                   " VALUES ('bench-3', ?, 0, 1, 1)", (f"new-{RUN}-{i:08d}",))
        db.execute("COMMIT")
    db.execute("PRAGMA synchronous = FULL")
    return (cpu() - t0) / n


def main():
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    dbs = {"old": connect(old), "new": connect(new)}
    works = ("touch", "touch0", "state", "tag", "contact")
    res = {(k, w): [] for k in dbs for w in works}
    for r in range(rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for k in order:
            db = dbs[k]
            res[(k, "touch")].append(touch(db, 1000 * r, key=k))
            res[(k, "state")].append(state(db, 100 * r))
            res[(k, "tag")].append(tag(db, 100 * r))
            res[(k, "contact")].append(contact(db, 1000 * r))
            res[(k, "touch0")].append(touch_untagged(db, 1000 * r))
    print("| write | old us CPU | new us CPU | new/old |")
    print("|---|---:|---:|---:|")
    for w, what in (("touch", "last-seen flush, per device (1,000 a transaction)"),
                    ("touch0", "last-seen flush, per untagged device"),
                    ("state", "state change, per device (own transaction)"),
                    ("tag", "tag set, per device (own transaction)"),
                    ("contact", "first contact, device insert (own transaction)")):
        o = statistics.median(res[("old", w)]) * 1e6
        n = statistics.median(res[("new", w)]) * 1e6
        print(f"| {what} | {o:.1f} | {n:.1f} | {n / o:.2f} |")
    o, n = (statistics.median(WALL[k]) * 1e3 for k in ("old", "new"))
    print(f"| last-seen flush of 1,000 tagged devices, wall ms (fsync included) | {o:.1f} |"
          f" {n:.1f} | {n / o:.2f} |")


if __name__ == "__main__":
    main()

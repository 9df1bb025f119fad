#!/usr/bin/env python3
"""rehash_audit.py DB FROM [DELETE_AFTER]: what someone who owns the database
file can do - rewrite audit row FROM's detail, then recompute every later
hash and the recorded head so that the chain verifies again (the hash of
src/store/audit.c, reimplemented here from its description).  With
DELETE_AFTER, first drop the rows after it (and re-point the head)."""
import hashlib
import sqlite3
import sys


def field(s):
    b = (s or "").encode()
    return str(len(b)).encode() + b":" + b


def row_hash(prev, rid, ts, actor, action, obj, detail, project):
    h = hashlib.sha256()
    h.update(f"{prev}\n{rid}\n{ts}\n".encode())
    for f in (actor, action, obj, detail):
        h.update(field(f))
    if project:
        h.update(field(project))
    return h.hexdigest()


db = sqlite3.connect(sys.argv[1])
start = int(sys.argv[2])
# the append-only triggers stop a client of the store, not the file's owner
triggers = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'"
                      " AND tbl_name = 'audit'").fetchall()
db.execute("DROP TRIGGER IF EXISTS audit_no_update")
db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
if len(sys.argv) > 3:
    db.execute("DELETE FROM audit WHERE id > ?", (int(sys.argv[3]),))
db.execute("UPDATE audit SET detail = ? WHERE id = ?", ('{"rewritten":true}', start))
rows = db.execute("SELECT id, ts, actor, action, object, detail, project FROM audit"
                  " WHERE id >= ? ORDER BY id", (start,)).fetchall()
prev = db.execute("SELECT prev_hash FROM audit WHERE id = ?", (start,)).fetchone()[0]
last_id, last_hash = None, None
for rid, ts, actor, action, obj, detail, project in rows:
    h = row_hash(prev, rid, ts, actor, action, obj, detail, project)
    db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, rid))
    prev, last_id, last_hash = h, rid, h
db.execute("UPDATE meta SET value = ? WHERE key = 'audit_head_id'", (str(last_id),))
db.execute("UPDATE meta SET value = ? WHERE key = 'audit_head_hash'", (last_hash,))
for (sql,) in triggers:
    db.execute(sql)
db.commit()

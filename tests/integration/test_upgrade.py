"""A database written by the first router version (schema 1) is migrated
on start: its queued message is delivered and its dedup window kept."""
import os
import sqlite3
import time

from conftest import Router, msg

V1_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta(key,value) VALUES('schema_version','1');
CREATE TABLE agents(id TEXT PRIMARY KEY, state TEXT NOT NULL, mode TEXT NOT NULL,
 capabilities TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE conversations(id TEXT PRIMARY KEY, participants TEXT NOT NULL, protocol TEXT,
 created_at INTEGER NOT NULL, last_activity INTEGER NOT NULL, message_count INTEGER NOT NULL);
CREATE TABLE messages(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, receiver TEXT NOT NULL,
 conversation_id TEXT, priority INTEGER NOT NULL, created_at INTEGER NOT NULL, accepted_at INTEGER NOT NULL,
 attempts INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL);
CREATE TABLE accepted(message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, receiver TEXT NOT NULL,
 accepted_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX accepted_at_idx ON accepted(accepted_at);
"""


def test_schema_1_database_is_migrated(tmpdir_path):
    r = Router(tmpdir_path)
    now = int(time.time() * 1000)
    body = b'{"performative":"inform","sender":"alice","receiver":"bob","content":"from v1","message_id":"old-1"}'
    db = sqlite3.connect(r.db)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO messages(seq,message_id,receiver,conversation_id,priority,created_at,accepted_at,body)"
               " VALUES(7,'old-1','bob',NULL,1,?,?,?)", (now, now, body))
    db.execute("INSERT INTO accepted VALUES('old-1',7,'bob',?)", (now,))
    db.commit()
    db.close()
    r.start()
    try:
        got = r.pull("bob")["messages"]
        assert [m["message_id"] for m in got] == ["old-1"] and got[0]["message"]["content"] == "from v1"
        r.ack("bob", ["old-1"])
        status, body2, _ = r.send(msg(message_id="old-1"))  # still inside the dedup window
        assert status == 202 and body2["duplicate"] is True
        assert r.send(msg(message_id="new-1"))[0] == 202  # new sequence numbers continue after 7
        assert "migrating the database schema" in r.log()
    finally:
        r.stop()
    db = sqlite3.connect(r.db)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='accepted'").fetchone()[0] == 0
    # the v1 row became an accepted_log entry; new-1's commit wrote its own row
    entries = "".join(r[0] for r in db.execute("SELECT entries FROM accepted_log ORDER BY seq"))
    assert entries.startswith("7 bob old-1\n") and " bob new-1\n" in entries
    assert db.execute("SELECT max(seq) FROM messages").fetchone()[0] > 7
    db.close()

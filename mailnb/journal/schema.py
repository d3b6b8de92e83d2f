"""The journal's tables, and the migrations that bring an older journal up to date."""
from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, campaign TEXT NOT NULL, account TEXT, host TEXT, pid INTEGER,
    dry_run INTEGER NOT NULL DEFAULT 0, started_at REAL NOT NULL, heartbeat REAL NOT NULL,
    ended_at REAL, summary TEXT, meta TEXT);
CREATE TABLE IF NOT EXISTS recipients (
    campaign TEXT NOT NULL, key TEXT NOT NULL, address TEXT NOT NULL, row TEXT,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    code INTEGER, reply TEXT, message_id TEXT, account TEXT, run_id TEXT,
    added_at REAL NOT NULL, updated_at REAL NOT NULL, sent_at REAL,
    PRIMARY KEY (campaign, key));
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, campaign TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT, status TEXT NOT NULL,
    code INTEGER, reply TEXT, message_id TEXT, account TEXT);
CREATE INDEX IF NOT EXISTS events_sent ON events (account, at) WHERE status = 'sent';
CREATE TABLE IF NOT EXISTS bounce_sources (source_id TEXT PRIMARY KEY, processed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bounces (
    at REAL NOT NULL, source_id TEXT NOT NULL, recipient TEXT, rkey TEXT, campaign TEXT, key TEXT,
    message_id TEXT, status TEXT, reply_code INTEGER, reason TEXT, hard INTEGER, kind TEXT,
    diagnostic TEXT);
CREATE INDEX IF NOT EXISTS bounces_rkey ON bounces (rkey, at);
CREATE INDEX IF NOT EXISTS recipients_mid ON recipients (message_id);
CREATE TABLE IF NOT EXISTS unsubscribes (
    key TEXT NOT NULL, address TEXT NOT NULL, campaign TEXT NOT NULL DEFAULT '', source TEXT,
    at REAL NOT NULL, PRIMARY KEY (key, campaign));
CREATE TABLE IF NOT EXISTS suppressions (
    key TEXT PRIMARY KEY, address TEXT NOT NULL, reason TEXT, source TEXT, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (hash TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS campaign_counts (
    campaign TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, purged_at REAL NOT NULL,
    PRIMARY KEY (campaign, status));
"""

#: the schema's versions: each entry's statements take a journal from the version before to its
#: own. Every journal records its version (``schema_version``) and is brought up to date when
#: opened; one made before versions were kept has version 1's tables already.
MIGRATIONS: dict[int, str] = {
    1: SCHEMA,
    2: """
CREATE TABLE IF NOT EXISTS pace (
    account TEXT PRIMARY KEY, next_at REAL NOT NULL, n INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS recipients_in_flight ON recipients (account) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (campaign, status);
""",
    3: """
ALTER TABLE runs ADD COLUMN lease REAL;
""",
}
SCHEMA_VERSION = max(MIGRATIONS)


def columns() -> dict[str, list[str]]:
    """Every table of the journal and its columns, as the schema defines them."""
    db = sqlite3.connect(":memory:")
    for version in sorted(MIGRATIONS):
        db.executescript(MIGRATIONS[version])
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in tables}

-- Configuration revision: one row, bumped by every configuration change.
CREATE TABLE revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);

-- Every synced configuration entity (settings, secrets, users, sessions,
-- api tokens, clients, rules, blocklists, rewrites, ...) is one row:
-- kind + key, the revision that last changed it, and its JSON data.
-- data IS NULL marks a deletion (tombstone) so followers converge.
CREATE TABLE config (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    revision BIGINT NOT NULL,
    data TEXT,
    PRIMARY KEY (kind, key)
);
CREATE INDEX config_by_revision ON config (revision);

-- Content-addressed large values (downloaded blocklist contents).
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    size INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

-- Node-local state: never synced (cluster membership, HA, sync markers).
CREATE TABLE node_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE query_log (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    client_ip TEXT NOT NULL,
    client_name TEXT,
    qname TEXT NOT NULL,
    qtype INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT,
    upstream TEXT,
    rcode INTEGER,
    duration_ms DOUBLE PRECISION
);
CREATE INDEX query_log_by_ts ON query_log (ts);
CREATE INDEX query_log_by_client ON query_log (client_ip, ts);

CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    level TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    read INTEGER NOT NULL DEFAULT 0
);

-- Replay protection for signed cluster requests; survives restarts.
CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY,
    expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX nonces_by_expiry ON nonces (expires);

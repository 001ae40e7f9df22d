-- +goose Up
-- Times are unix milliseconds. Booleans are 0/1.

CREATE TABLE wallets (
    address    TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('master', 'agent')),
    parent     TEXT    REFERENCES wallets (address),
    login_hash TEXT    UNIQUE,
    scope_json TEXT,   -- JSON of agentkeys.Scope, NULL = unrestricted
    created_at INTEGER NOT NULL,
    torn_down  INTEGER NOT NULL DEFAULT 0,
    CHECK (parent <> address)
);
CREATE INDEX wallets_parent ON wallets (parent);

CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    wallet      TEXT    NOT NULL REFERENCES wallets (address),
    parent_hash TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_wallet ON sessions (wallet);
CREATE INDEX sessions_parent_hash ON sessions (parent_hash);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE credentials (
    wallet     TEXT    NOT NULL REFERENCES wallets (address),
    service    TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (wallet, service)
);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    ts           INTEGER NOT NULL,
    owner_wallet TEXT    NOT NULL,
    agent_wallet TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    result       TEXT    NOT NULL,
    detail       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_owner ON audit_log (owner_wallet, id);
CREATE INDEX audit_log_agent ON audit_log (agent_wallet, id);
CREATE INDEX audit_log_ts ON audit_log (ts);

CREATE TABLE identity_links (
    wallet         TEXT    NOT NULL REFERENCES wallets (address),
    identity_type  TEXT    NOT NULL,
    identity_value TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    UNIQUE (identity_type, identity_value)
);
CREATE INDEX identity_links_wallet ON identity_links (wallet);

CREATE TABLE inboxes (
    address    TEXT    PRIMARY KEY,
    wallet     TEXT    NOT NULL REFERENCES wallets (address),
    created_at INTEGER NOT NULL
);
CREATE INDEX inboxes_wallet ON inboxes (wallet);

CREATE TABLE inbox_messages (
    msg_id      TEXT    PRIMARY KEY,
    address     TEXT    NOT NULL REFERENCES inboxes (address),
    from_addr   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX inbox_messages_address_received ON inbox_messages (address, received_at DESC);

-- +goose Down
DROP TABLE inbox_messages;
DROP TABLE inboxes;
DROP TABLE identity_links;
DROP TABLE audit_log;
DROP TABLE credentials;
DROP TABLE sessions;
DROP TABLE wallets;

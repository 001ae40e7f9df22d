-- +goose Up
-- Pairing and recovery requests, and the daemon rendezvous relay. Times are
-- unix milliseconds, booleans 0/1. Optional wallets, times and byte strings
-- are NULL when unset; required byte strings are never NULL (empty instead).

CREATE TABLE auth_requests (
    id              TEXT    PRIMARY KEY,
    pair_code       TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    details         BLOB    NOT NULL,
    child_pubkey    BLOB    NOT NULL,
    parent_wallet   TEXT,
    identity_type   TEXT    NOT NULL,
    identity_value  TEXT    NOT NULL,
    otp_hash        TEXT    NOT NULL,
    await_hash      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    approver_wallet TEXT,
    result_wallet   TEXT,
    sealed_session  BLOB,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_at      INTEGER
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE rendezvous (
    pair_code     TEXT    PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE,
    daemon_pubkey BLOB    NOT NULL,
    payload       BLOB,
    delivered     INTEGER NOT NULL DEFAULT 0,
    consumed      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX rendezvous_expires_at ON rendezvous (expires_at);

-- +goose Down
DROP TABLE rendezvous;
DROP TABLE auth_requests;

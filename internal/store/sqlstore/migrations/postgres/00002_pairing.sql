-- +goose Up
-- Pairing and recovery requests, and the daemon rendezvous relay. Times are
-- unix milliseconds. Optional wallets, times and byte strings are NULL when
-- unset; required byte strings are never NULL (empty instead).

CREATE TABLE auth_requests (
    id              TEXT    PRIMARY KEY,
    pair_code       TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    details         BYTEA   NOT NULL,
    child_pubkey    BYTEA   NOT NULL,
    parent_wallet   TEXT,
    identity_type   TEXT    NOT NULL,
    identity_value  TEXT    NOT NULL,
    otp_hash        TEXT    NOT NULL,
    await_hash      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    approver_wallet TEXT,
    result_wallet   TEXT,
    sealed_session  BYTEA,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    decided_at      BIGINT
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE rendezvous (
    pair_code     TEXT    PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE,
    daemon_pubkey BYTEA   NOT NULL,
    payload       BYTEA,
    delivered     BOOLEAN NOT NULL DEFAULT FALSE,
    consumed      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX rendezvous_expires_at ON rendezvous (expires_at);

-- +goose Down
DROP TABLE rendezvous;
DROP TABLE auth_requests;

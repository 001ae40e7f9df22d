-- One chain per broker replica, signed checkpoints and a write probe.
--
-- mint_log gains a chain column; its key becomes (chain, id), id being the
-- position within the chain. Rows written before this migration belong to
-- the chain "default" and keep their hashes (see audit.ComputeHash).
-- mint_log_chains replaces mint_log_head with one head row per chain.
-- mint_log_checkpoints holds signed chain heads (audit.Checkpoint).
-- mint_log_probe is written by readiness probes, never by mints.

-- +goose Up
CREATE TABLE mint_log_new (
    chain                    TEXT    NOT NULL,
    id                       INTEGER NOT NULL,
    minted_at                INTEGER NOT NULL,
    requester_token_hash     TEXT    NOT NULL,
    requester_wallet         TEXT    NOT NULL,
    requested_role           TEXT    NOT NULL,
    session_duration_seconds INTEGER NOT NULL,
    sts_session_name         TEXT    NOT NULL,
    outcome                  TEXT    NOT NULL,
    outcome_detail           TEXT,
    client_ip                TEXT    NOT NULL DEFAULT '',
    request_id               TEXT    NOT NULL DEFAULT '',
    credential_id            TEXT    NOT NULL DEFAULT '',
    credential_expires_at    INTEGER NOT NULL DEFAULT 0,
    prev_hash                TEXT    NOT NULL,
    row_hash                 TEXT    NOT NULL,
    PRIMARY KEY (chain, id)
);
INSERT INTO mint_log_new (chain, id, minted_at, requester_token_hash, requester_wallet, requested_role,
    session_duration_seconds, sts_session_name, outcome, outcome_detail, client_ip, request_id,
    credential_id, credential_expires_at, prev_hash, row_hash)
SELECT 'default', id, minted_at, requester_token_hash, requester_wallet, requested_role,
    session_duration_seconds, sts_session_name, outcome, outcome_detail, client_ip, request_id,
    credential_id, credential_expires_at, prev_hash, row_hash
FROM mint_log;
DROP TABLE mint_log;
ALTER TABLE mint_log_new RENAME TO mint_log;
CREATE INDEX idx_mint_log_minted_at ON mint_log (minted_at);
CREATE INDEX idx_mint_log_wallet ON mint_log (requester_wallet);

CREATE TABLE mint_log_chains (
    chain     TEXT    PRIMARY KEY,
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO mint_log_chains (chain, last_id, last_hash)
SELECT 'default', last_id, last_hash FROM mint_log_head WHERE last_id > 0;
DROP TABLE mint_log_head;

CREATE TABLE mint_log_checkpoints (
    chain      TEXT    NOT NULL,
    id         INTEGER NOT NULL,
    row_hash   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    kid        TEXT    NOT NULL,
    signature  TEXT    NOT NULL,
    PRIMARY KEY (chain, id)
);

CREATE TABLE mint_log_probe (
    chain     TEXT    PRIMARY KEY,
    probed_at INTEGER NOT NULL
);

-- +goose StatementBegin
CREATE TRIGGER mint_log_no_update BEFORE UPDATE ON mint_log
BEGIN
    SELECT RAISE(ABORT, 'mint_log is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER mint_log_no_delete BEFORE DELETE ON mint_log
BEGIN
    SELECT RAISE(ABORT, 'mint_log is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER mint_log_checkpoints_no_change BEFORE UPDATE ON mint_log_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'mint_log_checkpoints is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER mint_log_checkpoints_no_delete BEFORE DELETE ON mint_log_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'mint_log_checkpoints is append-only');
END;
-- +goose StatementEnd

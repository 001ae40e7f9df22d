-- Broker audit ledger. One row per mint attempt, hash-chained: row_hash is
-- SHA-256 over the row's fields and prev_hash (see audit.ComputeHash).
-- mint_log_head holds the chain head; appends update it in the same
-- transaction, so truncating rows at the end is detected too.

-- +goose Up
CREATE TABLE mint_log (
    id                       INTEGER PRIMARY KEY,
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
    row_hash                 TEXT    NOT NULL
);
CREATE INDEX idx_mint_log_minted_at ON mint_log (minted_at);
CREATE INDEX idx_mint_log_wallet ON mint_log (requester_wallet);

CREATE TABLE mint_log_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO mint_log_head (singleton, last_id, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only by construction. Someone with write access to the file can
-- drop these triggers; the hash chain is what detects that.
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

-- +goose Down
DROP TABLE mint_log_head;
DROP TABLE mint_log;

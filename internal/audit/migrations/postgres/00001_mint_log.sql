-- Broker audit ledger. One row per mint attempt, hash-chained: row_hash is
-- SHA-256 over the row's fields and prev_hash (see audit.ComputeHash).
-- mint_log_head holds the chain head; every append locks it (SELECT ... FOR
-- UPDATE), so several broker replicas extend one chain.

-- +goose Up
CREATE TABLE mint_log (
    id                       BIGINT PRIMARY KEY,
    minted_at                BIGINT NOT NULL,
    requester_token_hash     TEXT   NOT NULL,
    requester_wallet         TEXT   NOT NULL,
    requested_role           TEXT   NOT NULL,
    session_duration_seconds BIGINT NOT NULL,
    sts_session_name         TEXT   NOT NULL,
    outcome                  TEXT   NOT NULL,
    outcome_detail           TEXT,
    client_ip                TEXT   NOT NULL DEFAULT '',
    request_id               TEXT   NOT NULL DEFAULT '',
    credential_id            TEXT   NOT NULL DEFAULT '',
    credential_expires_at    BIGINT NOT NULL DEFAULT 0,
    prev_hash                TEXT   NOT NULL,
    row_hash                 TEXT   NOT NULL
);
CREATE INDEX idx_mint_log_minted_at ON mint_log (minted_at);
CREATE INDEX idx_mint_log_wallet ON mint_log (requester_wallet);

CREATE TABLE mint_log_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id   BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);
INSERT INTO mint_log_head (singleton, last_id, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only by construction. A superuser can drop this trigger; the hash
-- chain is what detects that.
-- +goose StatementBegin
CREATE FUNCTION mint_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mint_log is append-only';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER mint_log_no_change BEFORE UPDATE OR DELETE ON mint_log
    FOR EACH ROW EXECUTE FUNCTION mint_log_append_only();
CREATE TRIGGER mint_log_no_truncate BEFORE TRUNCATE ON mint_log
    FOR EACH STATEMENT EXECUTE FUNCTION mint_log_append_only();

-- +goose Down
DROP TABLE mint_log_head;
DROP TABLE mint_log;
DROP FUNCTION mint_log_append_only();

-- One chain per broker replica, signed checkpoints and a write probe.
--
-- mint_log gains a chain column; its key becomes (chain, id), id being the
-- position within the chain. Rows written before this migration belong to
-- the chain 'default' and keep their hashes (see audit.ComputeHash).
-- mint_log_chains replaces mint_log_head with one head row per chain, so a
-- replica locks only its own chain's head: a stalled replica cannot block
-- the others. mint_log_checkpoints holds signed chain heads
-- (audit.Checkpoint). mint_log_probe is written by readiness probes, never
-- by mints.

-- +goose Up
ALTER TABLE mint_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'default';
ALTER TABLE mint_log ALTER COLUMN chain DROP DEFAULT;
ALTER TABLE mint_log DROP CONSTRAINT mint_log_pkey;
ALTER TABLE mint_log ADD PRIMARY KEY (chain, id);

CREATE TABLE mint_log_chains (
    chain     TEXT   PRIMARY KEY,
    last_id   BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);
INSERT INTO mint_log_chains (chain, last_id, last_hash)
SELECT 'default', last_id, last_hash FROM mint_log_head WHERE last_id > 0;
DROP TABLE mint_log_head;

CREATE TABLE mint_log_checkpoints (
    chain      TEXT   NOT NULL,
    id         BIGINT NOT NULL,
    row_hash   TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    kid        TEXT   NOT NULL,
    signature  TEXT   NOT NULL,
    PRIMARY KEY (chain, id)
);
CREATE TRIGGER mint_log_checkpoints_no_change BEFORE UPDATE OR DELETE ON mint_log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION mint_log_append_only();

CREATE TABLE mint_log_probe (
    chain     TEXT   PRIMARY KEY,
    probed_at BIGINT NOT NULL
);

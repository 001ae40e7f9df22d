-- +goose Up
-- `usage` filtered by agent, action and service (and the revocation check,
-- agent + action) reads the newest matching rows from this index in id
-- order and stops at the page's end, whatever the log's size.
CREATE INDEX audit_log_agent_action ON audit_log (agent_wallet, action, service, id);

-- +goose Down
DROP INDEX audit_log_agent_action;

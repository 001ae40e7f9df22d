-- +goose Up
-- `usage` filtered by agent, action and service (and the revocation check,
-- agent + action) reads the newest matching rows from this index in id
-- order and stops at the page's end, whatever the log's size. The
-- statistics tell the planner how correlated the three columns are: with
-- its default independence guess it expects a handful of rows, takes a
-- bitmap scan of every matching row and sorts them, which grows with the
-- log.
CREATE INDEX audit_log_agent_action ON audit_log (agent_wallet, action, service, id);
CREATE STATISTICS audit_log_agent_service_action (dependencies, mcv) ON agent_wallet, service, action FROM audit_log;

-- +goose Down
DROP STATISTICS audit_log_agent_service_action;
DROP INDEX audit_log_agent_action;

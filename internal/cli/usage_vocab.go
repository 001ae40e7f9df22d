package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/provision"
)

// Actions of the broker's mints as `usage` shows them.
const (
	actionMintJWT = "mint_jwt" // POST /v1/mint-oidc-jwt
	actionMintAWS = "mint_aws" // POST /v1/mint-aws-creds
)

// Services of the broker's mints as `usage` shows them.
const (
	serviceMintJWT = "oidc"
	serviceMintAWS = "aws"
)

// backendActions are the actions the backend writes into its audit log
// (a test checks the backend's source for more).
var backendActions = []string{
	agentkeys.ActionSessionCreate, agentkeys.ActionChildCreate, agentkeys.ActionStore, agentkeys.ActionRead,
	agentkeys.ActionList, agentkeys.ActionRevoke, agentkeys.ActionTeardown, agentkeys.ActionScopeRead,
	agentkeys.ActionScopeUpdate, agentkeys.ActionProvision, agentkeys.ActionAuthRequestOpen, agentkeys.ActionHTTP,
	"pair_approve", "recover_approve", "scope_change_approve", "auth_request_deny", "auth_request_otp",
	"auth_request_delivered", "identity_link", "rendezvous_deliver",
}

// brokerActions are the broker's mints.
var brokerActions = []string{actionMintJWT, actionMintAWS}

// backendResults are the results the backend writes, besides the
// provisioner's error codes (results of "provision").
var backendResults = []string{
	agentkeys.ResultOK, agentkeys.ResultDenied, agentkeys.ResultDeniedScope, agentkeys.ResultDeniedReadOnly,
	agentkeys.ResultNotFound, "LOCKED", "BAD_OTP",
}

// brokerResults are the outcomes the broker's ledger records.
var brokerResults = []string{
	audit.OutcomeOK, audit.OutcomeAuthFailed, audit.OutcomeBackendError, audit.OutcomeSTSError,
	audit.OutcomeBadRequest, audit.OutcomeScopeDenied, audit.OutcomeInternal, audit.OutcomeAttempt,
	audit.OutcomeSessionExpiring,
}

// knownActions and knownResults are every value --action and --result
// accept, sorted.
func knownActions() []string { return sortedUnique(backendActions, brokerActions) }

func knownResults() []string {
	var codes []string
	for _, c := range provision.ErrorCodes() {
		codes = append(codes, string(c))
	}
	return sortedUnique(backendResults, brokerResults, codes)
}

func sortedUnique(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkChoice refuses a value that is not one of known (values are
// case-sensitive), suggesting the nearest (exit 2).
func checkChoice(flag, value string, known []string) error {
	if value == "" || slices.Contains(known, value) {
		return nil
	}
	hint := ""
	for _, k := range known {
		if strings.EqualFold(k, value) {
			hint = k
			break
		}
	}
	if hint == "" {
		hint = didYouMean(value, known)
	}
	msg := fmt.Sprintf("%s: unknown value %q (values are case-sensitive)", flag, value)
	if hint != "" {
		msg += fmt.Sprintf("; did you mean %q?", hint)
	}
	return usagef("%s; one of: %s", msg, strings.Join(known, ", "))
}

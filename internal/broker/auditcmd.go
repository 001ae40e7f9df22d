package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// usageArgs turns an argument error into a usage exit.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		return nil
	}
}

func usageErr(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

func auditDBFrom(lookup LookupFunc, flag string) string {
	if flag != "" {
		return flag
	}
	return envOr(lookup, "BROKER_AUDIT_DB", envOr(lookup, "BROKER_AUDIT_DB_PATH", Defaults().AuditDB))
}

func auditCommand(lookup LookupFunc) *cobra.Command {
	a := &cobra.Command{Use: "audit", Short: "Inspect the audit ledger (read-only)"}
	a.AddCommand(auditVerifyCommand(lookup), auditCheckpointsCommand(lookup))
	return a
}

type verifyFlags struct {
	db          string
	envFile     string
	asJSON      bool
	checkpoints []string
	jwks        string
	expect      []string
}

func auditVerifyCommand(lookup LookupFunc) *cobra.Command {
	var f verifyFlags
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the ledger's hash chains; exit 3 and name the first broken link if it was tampered with",
		Long: `verify walks every chain of the audit ledger (one per broker replica) and checks every
link and chain head. It only reads: it never creates, migrates or writes the ledger, so it
works on a backup copy (any file mode) or a read-only file system, and it needs no secret.

The hash chain alone cannot tell a consistent rewrite by someone who can write the database
(edit a row and recompute every later hash, or cut the tail and fix the head row). Two
checks close that gap:

  --expect-head HASH | CHAIN=HASH   a head printed by an earlier verify (--json "head" or
                                    "heads") must still be a row of the chain; rows after it
                                    are fine. Repeatable.
  --checkpoint FILE --jwks SRC      signed checkpoints exported by the broker (the file named
                                    by BROKER_AUDIT_CHECKPOINT_FILE, or "audit checkpoints")
                                    are checked with the broker's public keys (a JWKS file or
                                    URL) and every checkpointed row must still have its hash.
                                    With --jwks the checkpoints stored in the ledger are
                                    checked too.

Exit status: 0 intact; 3 tampering found (BROKEN: names the first broken link); 1 the check
could not be completed (unreadable ledger, not a ledger, bad checkpoint file or keys);
2 usage error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVerify(cmd, lookup, f)
		},
	}
	fl := verify.Flags()
	fl.StringVar(&f.db, "db", "", "ledger: SQLite path or postgres:// URL (default BROKER_AUDIT_DB)")
	fl.StringVar(&f.envFile, "env-file", "", "read BROKER_AUDIT_DB from this systemd environment file (- for stdin), so a postgres:// URL with a password stays out of argv")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON document")
	fl.StringArrayVar(&f.checkpoints, "checkpoint", nil, "file of exported signed checkpoints (JSON lines); needs --jwks; repeatable")
	fl.StringVar(&f.jwks, "jwks", "", "the broker's public keys: a JWKS file, or an http(s) URL such as https://broker.example.com/.well-known/jwks.json")
	fl.StringArrayVar(&f.expect, "expect-head", nil, "HASH or CHAIN=HASH that must still be in the chain; repeatable")
	return verify
}

func runVerify(cmd *cobra.Command, lookup LookupFunc, f verifyFlags) error {
	if len(f.checkpoints) > 0 && f.jwks == "" {
		return usageErr("--checkpoint needs --jwks (the public keys that check the signatures)")
	}
	var opts audit.VerifyOptions
	for _, e := range f.expect {
		x, err := audit.ParseExpectation(e)
		if err != nil {
			return usageErr("--expect-head %q: %v", e, err)
		}
		opts.Expect = append(opts.Expect, x)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
	defer cancel()
	var keys jose.JSONWebKeySet
	if f.jwks != "" {
		var err error
		if keys, err = loadJWKS(ctx, f.jwks); err != nil {
			return &ExitError{Code: 1, Err: err}
		}
	}
	for _, path := range f.checkpoints {
		cks, err := readCheckpointFile(path)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		for _, c := range cks {
			if err := c.VerifySignature(keys); err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("checkpoint file %s: checkpoint of row %d of chain %q: %v (is --jwks the right key set?)", path, c.ID, c.Chain, err)}
			}
		}
		opts.Checkpoints = append(opts.Checkpoints, cks...)
	}

	db := f.db
	if db == "" && f.envFile != "" {
		var err error
		if db, err = auditDBFromEnvFile(f.envFile, cmd.InOrStdin()); err != nil {
			return &ExitError{Code: 1, Err: err}
		}
	}
	ledger, err := audit.OpenReadOnly(ctx, auditDBFrom(lookup, db))
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	defer ledger.Close()
	out := cmd.OutOrStdout()
	if f.jwks != "" {
		stored, err := ledger.Checkpoints(ctx)
		if err != nil {
			return &ExitError{Code: 1, Err: err}
		}
		for _, c := range stored {
			if err := c.VerifySignature(keys); err != nil {
				ce := &audit.ChainError{Chain: c.Chain, ID: c.ID, Reason: "the checkpoint stored in the ledger for this row has an invalid signature (" + err.Error() + ")"}
				return broken(out, f.asJSON, 0, ce)
			}
		}
		opts.Checkpoints = append(opts.Checkpoints, stored...)
	}

	rep, err := ledger.VerifyWith(ctx, opts)
	var ce *audit.ChainError
	switch {
	case errors.As(err, &ce):
		return broken(out, f.asJSON, rep.Rows, ce)
	case err != nil:
		return &ExitError{Code: 1, Err: err}
	}
	heads := make(map[string]string, len(rep.Heads))
	names := make([]string, 0, len(rep.Heads))
	for c, h := range rep.Heads {
		heads[c] = h.Hash
		names = append(names, c)
	}
	slices.Sort(names)
	if f.asJSON {
		doc := map[string]any{"ok": true, "rows": rep.Rows, "last_id": rep.LastID, "last_hash": rep.LastHash,
			"heads": heads, "checkpoints_checked": rep.Checkpoints, "expected_heads_found": rep.Expected}
		if len(rep.Heads) <= 1 {
			doc["head"] = rep.LastHash
		}
		return json.NewEncoder(out).Encode(doc)
	}
	if len(rep.Heads) <= 1 {
		fmt.Fprintf(out, "OK: %d rows, chain intact (head %s)\n", rep.Rows, rep.LastHash)
	} else {
		fmt.Fprintf(out, "OK: %d rows in %d chains, all intact\n", rep.Rows, len(rep.Heads))
		for _, c := range names {
			fmt.Fprintf(out, "  chain %s: %d rows, head %s\n", c, rep.Heads[c].ID, rep.Heads[c].Hash)
		}
	}
	if rep.Checkpoints > 0 || len(opts.Checkpoints) > 0 {
		fmt.Fprintf(out, "%d signed checkpoints match the chain.\n", rep.Checkpoints)
	}
	if rep.Expected > 0 {
		fmt.Fprintf(out, "%d expected heads found.\n", rep.Expected)
	}
	return nil
}

// broken reports a broken chain once (stdout) and exits ExitBroken.
func broken(out io.Writer, asJSON bool, rows int64, ce *audit.ChainError) error {
	if asJSON {
		json.NewEncoder(out).Encode(map[string]any{"ok": false, "rows_checked": rows, "broken_at": ce.ID, "chain": ce.Chain, "reason": ce.Reason})
	} else {
		fmt.Fprintf(out, "BROKEN: %v\n%d rows before it verified.\n", ce, rows)
	}
	return &ExitError{Code: ExitBroken, Err: ce, Quiet: true}
}

// maxJWKSBytes bounds a key set read from a file or URL.
const maxJWKSBytes = 1 << 20

// loadJWKS reads a JWKS from a file or an http(s) URL.
func loadJWKS(ctx context.Context, src string) (jose.JSONWebKeySet, error) {
	var data []byte
	if strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "http://") {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: fetch: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: %s answered %s", src, resp.Status)
		}
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: read: %w", err)
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: %w", err)
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, maxJWKSBytes+1)); err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: %w", err)
		}
	}
	if len(data) > maxJWKSBytes {
		return jose.JSONWebKeySet{}, fmt.Errorf("--jwks: larger than %d bytes", maxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil || len(set.Keys) == 0 {
		return jose.JSONWebKeySet{}, errors.New("--jwks: not a JWKS document with at least one key")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return jose.JSONWebKeySet{}, errors.New("--jwks: the key set holds a private key; give the public JWKS")
		}
	}
	return set, nil
}

func readCheckpointFile(path string) ([]audit.Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	cks, err := audit.ParseCheckpoints(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("--checkpoint %s: %w", path, err)
	}
	if len(cks) == 0 {
		return nil, fmt.Errorf("--checkpoint %s: no checkpoints in the file", path)
	}
	return cks, nil
}

func auditCheckpointsCommand(lookup LookupFunc) *cobra.Command {
	var db string
	c := &cobra.Command{
		Use:   "checkpoints",
		Short: "Export the signed checkpoints stored in the ledger (JSON lines, for verify --checkpoint)",
		Long: `checkpoints prints every signed checkpoint stored in the ledger, one JSON object per line:
{"chain","id","row_hash","time","kid","signature"}. Copy the output somewhere the broker's
host cannot write, and later check the ledger against it with
"audit verify --checkpoint FILE --jwks SRC". Read-only, like verify.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			ledger, err := audit.OpenReadOnly(ctx, auditDBFrom(lookup, db))
			if err != nil {
				return err
			}
			defer ledger.Close()
			cks, err := ledger.Checkpoints(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, ck := range cks {
				if _, err := out.Write(ck.MarshalLine()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&db, "db", "", "ledger: SQLite path or postgres:// URL (default BROKER_AUDIT_DB)")
	return c
}

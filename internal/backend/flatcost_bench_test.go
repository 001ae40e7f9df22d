package backend

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/sqldb"
)

// EnvBenchScale turns BenchmarkFlatCost on: 1 fills the store with
// 1,000,000 credentials across 10,000 agents and 10,000,000 audit rows; a
// fraction (0.01) scales every count down for a quick look. `make
// bench-scale` sets it; CI and `make test` never do.
const EnvBenchScale = "AGENTKEYS_BENCH_SCALE"

// flatOps are the operations whose cost must not grow with the data.
var flatOps = []string{"read", "validate", "usage", "usage-filtered"}

// BenchmarkFlatCost measures credential read, session validate, the first
// page of `usage` and a filtered `usage` over HTTP on an empty store, then
// fills the same store directly in SQL (not through HTTP) and measures
// again; it reports each operation's median on both as empty-us and
// full-us and their ratio. Each engine gets a database of its own, dropped
// at the end.
func BenchmarkFlatCost(b *testing.B) {
	scale, _ := strconv.ParseFloat(os.Getenv(EnvBenchScale), 64)
	if scale <= 0 {
		b.Skipf("set %s=1 (make bench-scale) to fill a store with 1M credentials and 10M audit rows", EnvBenchScale)
	}
	for _, eng := range benchEngines {
		b.Run("engine="+eng.name, func(b *testing.B) {
			dsn := eng.dsn(b)
			e := newEnvDSN(b, dsn)
			m := e.master("bench")
			a := e.agent(m, []string{"s0"}, false)
			e.storeCredential(m.Token, a.Wallet, "s0", secret())
			ops := map[string]func() error{
				"read":     func() error { _, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "s0"); return err },
				"validate": func() error { _, err := e.client.Validate(ctx, a.Token); return err },
				"usage": func() error {
					_, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{})
					return err
				},
				"usage-filtered": func() error {
					_, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Agent: a.Wallet, Service: "s0", Action: agentkeys.ActionRead})
					return err
				},
			}
			empty := map[string]time.Duration{}
			for _, op := range flatOps {
				empty[op] = medianOf(b, ops[op])
			}
			start := time.Now()
			fillStore(b, dsn, scale, m.Wallet, a.Wallet)
			b.Logf("%s: filled at scale %g in %v", eng.name, scale, time.Since(start).Round(time.Second))
			for _, op := range flatOps {
				full := medianOf(b, ops[op])
				b.Run("op="+op, func(b *testing.B) {
					b.ReportMetric(float64(empty[op].Microseconds()), "empty-us")
					b.ReportMetric(float64(full.Microseconds()), "full-us")
					b.ReportMetric(float64(full)/float64(max(empty[op], time.Microsecond)), "ratio")
				})
			}
		})
	}
}

// medianOf runs op 200 times (after 20 to warm up) and returns the median.
func medianOf(b *testing.B, op func() error) time.Duration {
	b.Helper()
	times := make([]time.Duration, 0, 200)
	for i := range 220 {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		if i >= 20 {
			times = append(times, time.Since(t0))
		}
	}
	slices.Sort(times)
	return times[len(times)/2]
}

// fillStore adds, in SQL, 100 masters with 10,000 agents between them,
// 100 credentials per agent and 10,000,000 audit rows (times scale); one
// row in 100 is the bench master's agent's, spread through the log.
func fillStore(b *testing.B, dsn string, scale float64, master, agent agentkeys.Wallet) {
	b.Helper()
	pg := sqldb.IsPostgres(dsn)
	driver, src := "sqlite", dsn
	if pg {
		driver = "pgx"
	}
	db, err := sql.Open(driver, src)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// seq yields i from 0 to n-1; hexw formats expr as w hex digits.
	seq := func(n int) string {
		if pg {
			return fmt.Sprintf("generate_series(0, %d) AS g(i)", n-1)
		}
		return fmt.Sprintf("(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < %d) SELECT i FROM s) AS g", n-1)
	}
	hexw := func(expr string) string {
		if pg {
			return "lpad(to_hex(" + expr + "), 38, '0')"
		}
		return "printf('%038x', " + expr + ")"
	}
	agents := max(100, int(10000*scale))
	rows := max(1000, int(10_000_000*scale))
	now := time.Now().UnixMilli()
	masterAddr := "'0xaa' || " + hexw("i")
	stmts := []string{
		`INSERT INTO wallets (address, kind, parent, login_hash, scope_json, created_at, torn_down)
			SELECT ` + masterAddr + `, 'master', NULL, 'fill-' || i, NULL, ` + strconv.FormatInt(now, 10) + `, FALSE FROM ` + seq(100),
		`INSERT INTO wallets (address, kind, parent, login_hash, scope_json, created_at, torn_down)
			SELECT '0xbb' || ` + hexw("i") + `, 'agent', '0xaa' || ` + hexw("i % 100") + `, NULL, NULL, ` + strconv.FormatInt(now, 10) + `, FALSE FROM ` + seq(agents),
		`INSERT INTO credentials (wallet, service, sealed, created_at, updated_at)
			SELECT w.address, 'svc' || g.i, ` + blob(pg) + `, ` + strconv.FormatInt(now, 10) + `, ` + strconv.FormatInt(now, 10) + `
			FROM wallets w CROSS JOIN ` + seq(100) + ` WHERE w.kind = 'agent' AND w.address LIKE '0xbb%'`,
		`INSERT INTO audit_log (ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip)
			SELECT ` + strconv.FormatInt(now-int64(rows), 10) + ` + i,
				CASE WHEN i % 100 = 0 THEN '` + string(master) + `' ELSE '0xaa' || ` + hexw("i % 100") + ` END,
				CASE WHEN i % 100 = 0 THEN '` + string(agent) + `' ELSE '0xbb' || ` + hexw("i % "+strconv.Itoa(agents)) + ` END,
				CASE WHEN i % 100 = 0 THEN 's0' ELSE 'svc' || (i % 97) END,
				CASE WHEN i % 3 = 0 THEN 'read' WHEN i % 3 = 1 THEN 'list' ELSE 'store' END,
				'ok', '', '127.0.0.1' FROM ` + seq(rows),
	}
	c := context.Background()
	for _, q := range stmts {
		if _, err := db.ExecContext(c, q); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
	analyze := "ANALYZE"
	if _, err := db.ExecContext(c, analyze); err != nil {
		b.Fatalf("fill: %v", err)
	}
}

// blob is a one-byte sealed value in the engine's literal syntax (never
// opened: only the bench agent's credential is read).
func blob(pg bool) string {
	if pg {
		return `'\x00'::bytea`
	}
	return `X'00'`
}

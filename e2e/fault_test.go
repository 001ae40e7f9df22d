package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/audit/audittest"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// The fault suite drives real broker processes through the failures the
// ledger must survive — kill -9 under load, a full disk, a locked ledger, a
// frozen replica, a forged chain — and checks after each one that every
// credential a client received has an "ok" row with its id, and that no
// mint refused with audit_error has an "ok" row. It prints one report
// (and writes it to $AGENTKEYS_FAULT_REPORT when set).

type faultReport struct {
	mu             sync.Mutex
	lines          []string
	received       int // credentials clients received
	withoutRow     int // ... that have no ok row
	refused        int // mints answered 500 audit_error
	refusedButOK   int // ... whose request has an ok row
	freezeRatio    float64
	freezeWorstMS  float64
	freezeMeasured bool
}

func (r *faultReport) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
}

func (r *faultReport) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	b.WriteString("AgentKeys ledger fault suite\n")
	for _, l := range r.lines {
		b.WriteString("  " + l + "\n")
	}
	if r.freezeMeasured {
		fmt.Fprintf(&b, "frozen replica: the other replica kept %.0f%% of its throughput, slowest mint %.0f ms\n", 100*r.freezeRatio, r.freezeWorstMS)
	}
	fmt.Fprintf(&b, "credentials received: %d\n", r.received)
	fmt.Fprintf(&b, "mints refused with audit_error: %d, of them with an ok row: %d\n", r.refused, r.refusedButOK)
	fmt.Fprintf(&b, "credentials received without a row: %d\n", r.withoutRow)
	return b.String()
}

func TestFaultSuite(t *testing.T) {
	rep := &faultReport{}
	start := time.Now()
	defer func() {
		rep.add("total time %v", time.Since(start).Round(time.Second))
		out := rep.String()
		fmt.Print(out)
		t.Log("\n" + out)
		if p := os.Getenv("AGENTKEYS_FAULT_REPORT"); p != "" {
			os.WriteFile(p, []byte(out), 0o644)
		}
		if rep.withoutRow != 0 || rep.refusedButOK != 0 {
			t.Errorf("the ledger does not match what clients received")
		}
		if rep.received == 0 {
			t.Errorf("no credential was received: the suite checked nothing")
		}
	}()
	f := newFaultEnv(t, rep)
	t.Run("kill -9 under load", f.kill9)
	t.Run("full disk", f.fullDisk)
	t.Run("ledger lock", f.ledgerLock)
	t.Run("frozen replica", f.frozenReplica)
	t.Run("forged chain", f.forgedChain)
}

type faultEnv struct {
	t          *testing.T
	rep        *faultReport
	backendURL string
	sts        *ststest.Fake
	token      agentkeys.Token
}

func newFaultEnv(t *testing.T, rep *faultReport) *faultEnv {
	dir := t.TempDir()
	f := &faultEnv{t: t, rep: rep, sts: ststest.New()}
	t.Cleanup(f.sts.Close)
	// The brokers run without a validation cache, so every mint asks the
	// backend: lift its per-wallet limit, or the load itself is refused.
	f.backendURL, _ = startBackend(t, dir, nil, "--wallet-rate", "0")
	_, master := loginMaster(t, f.backendURL, "fault-master")
	f.token = master.Token
	return f
}

// broker is one agentkeys-broker process and how to restart it.
type broker struct {
	url  string
	proc *proc
	env  []string
	port int
	dir  string
}

func (f *faultEnv) startBroker(t *testing.T, dir, db, chain string, extra ...string) *broker {
	t.Helper()
	b := &broker{port: freePort(t), dir: dir}
	b.url = "http://127.0.0.1:" + strconv.Itoa(b.port)
	b.env = append([]string{
		"BROKER_BACKEND_URL=" + f.backendURL,
		"BROKER_OIDC_KEYPAIR_PATH=" + filepath.Join(dir, "oidc-keypair.json"),
		"BROKER_AUDIT_DB=" + db,
		"BROKER_AUDIT_CHAIN=" + chain,
		"BROKER_VALIDATE_CACHE_SECONDS=0",
		"BROKER_RATE_PER_BEARER=100000", "BROKER_RATE_PER_IP=100000",
		"BROKER_DATA_ROLE_ARN=arn:aws:iam::000000000000:role/agentkeys-data-role",
		"BROKER_STS_ENDPOINT=" + f.sts.URL,
		"DAEMON_ACCESS_KEY_ID=AKIAFAULTSUITE000001", "DAEMON_SECRET_ACCESS_KEY=fault-suite-static-secret",
		"AWS_EC2_METADATA_DISABLED=true",
	}, extra...)
	b.restart(t)
	return b
}

func (b *broker) restart(t *testing.T) {
	t.Helper()
	b.proc = start(t, b.env, "agentkeys-broker", "--port", strconv.Itoa(b.port), "--skip-startup-check")
	waitHTTP(t, b.proc, b.url+"/healthz")
}

func (b *broker) signal(sig syscall.Signal) { b.proc.cmd.Process.Signal(sig) }

// outcome is what a client got from one mint.
type outcome struct {
	status    int
	kind      string // error kind
	requestID string
	credID    string // jti or AccessKeyId on 200
	latency   time.Duration
	started   time.Time
}

var faultClient = &http.Client{Timeout: 15 * time.Second}

func (f *faultEnv) mintOnce(url string, aws bool) outcome {
	path := "/v1/mint-oidc-jwt"
	if aws {
		path = "/v1/mint-aws-creds"
	}
	req, _ := http.NewRequest("POST", url+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.token.Reveal())
	o := outcome{started: time.Now()}
	resp, err := faultClient.Do(req)
	o.latency = time.Since(o.started)
	if err != nil {
		return o // connection refused or reset: the client received nothing
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	o.status, o.requestID = resp.StatusCode, resp.Header.Get("X-Request-Id")
	var m map[string]any
	json.Unmarshal(raw, &m)
	if o.status != 200 {
		o.kind, _ = m["error"].(string)
		return o
	}
	if aws {
		o.credID, _ = m["access_key_id"].(string)
	} else if jwt, _ := m["jwt"].(string); jwt != "" {
		parts := strings.Split(jwt, ".")
		if len(parts) == 3 {
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				JTI string `json:"jti"`
			}
			json.Unmarshal(payload, &claims)
			o.credID = claims.JTI
		}
	}
	if o.credID == "" {
		f.t.Errorf("200 without a credential id: %s", raw)
	}
	return o
}

// load runs workers minting (JWT and AWS alternately) against target()
// until stop is closed.
func (f *faultEnv) load(workers int, target func() string, stop <-chan struct{}) <-chan []outcome {
	res := make(chan []outcome, 1)
	go func() {
		var mu sync.Mutex
		var all []outcome
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				var mine []outcome
				for i := 0; ; i++ {
					select {
					case <-stop:
						mu.Lock()
						all = append(all, mine...)
						mu.Unlock()
						return
					default:
					}
					o := f.mintOnce(target(), (w+i)%2 == 1)
					if o.status == 0 {
						time.Sleep(20 * time.Millisecond) // the broker is down; retry shortly
					}
					mine = append(mine, o)
				}
			})
		}
		wg.Wait()
		res <- all
	}()
	return res
}

// check compares what clients received with the ledger and adds it to the
// report.
func (f *faultEnv) check(t *testing.T, name, db string, outs []outcome) {
	t.Helper()
	ro, err := audit.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatalf("%s: open ledger: %v", name, err)
	}
	defer ro.Close()
	rows, err := ro.DB().Query("SELECT credential_id, request_id, outcome FROM mint_log")
	if err != nil {
		t.Fatal(err)
	}
	okCred := map[string]bool{}
	okReq := map[string]bool{}
	for rows.Next() {
		var cred, req, oc string
		if err := rows.Scan(&cred, &req, &oc); err != nil {
			t.Fatal(err)
		}
		if oc == audit.OutcomeOK {
			okCred[cred], okReq[req] = true, true
		}
	}
	rows.Close()
	var got, missing, refused, refusedOK, down int
	for _, o := range outs {
		switch {
		case o.status == 200:
			got++
			if !okCred[o.credID] {
				missing++
				t.Errorf("%s: credential %s (request %s) received without an ok row", name, o.credID, o.requestID)
			}
		case o.kind == "audit_error":
			refused++
			if okReq[o.requestID] {
				refusedOK++
				t.Errorf("%s: request %s answered audit_error but the ledger says ok", name, o.requestID)
			}
		case o.status == 0:
			down++
		}
	}
	f.rep.mu.Lock()
	f.rep.received += got
	f.rep.withoutRow += missing
	f.rep.refused += refused
	f.rep.refusedButOK += refusedOK
	f.rep.mu.Unlock()
	f.rep.add("%s: %d mints, %d credentials received (%d without a row), %d refused audit_error (%d with an ok row), %d while down",
		name, len(outs), got, missing, refused, refusedOK, down)
}

// verify runs `audit verify` and returns its exit code and output.
func verifyLedger(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin["agentkeys-broker"], append([]string{"audit", "verify"}, args...)...)
	out, err := cmd.CombinedOutput()
	code, ok := testkit.ExitCode(err)
	if !ok {
		t.Fatal(err)
	}
	return code, string(out)
}

func (f *faultEnv) kill9(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.sqlite")
	b := f.startBroker(t, dir, db, "kill9")
	var url atomic.Value
	url.Store(b.url)
	stop := make(chan struct{})
	res := f.load(8, func() string { return url.Load().(string) }, stop)
	const kills = 3
	for range kills {
		time.Sleep(700 * time.Millisecond) // under load
		b.signal(syscall.SIGKILL)
		<-b.proc.done
		b.proc.done <- nil
		b.restart(t)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	outs := <-res
	f.check(t, fmt.Sprintf("kill -9 x%d under load (SQLite)", kills), db, outs)
	if code, out := verifyLedger(t, "--db", db); code != 0 {
		t.Fatalf("audit verify after kill -9: exit %d\n%s", code, out)
	}
}

func (f *faultEnv) fullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		f.rep.add("full disk: skipped (mounting a small tmpfs needs root)")
		t.Skip("full-disk scenario skipped: mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		f.rep.add("full disk: skipped (mount failed)")
		t.Skipf("full-disk scenario skipped: mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	db := filepath.Join(dir, "audit.sqlite")
	b := f.startBroker(t, t.TempDir(), db, "fulldisk")
	stop := make(chan struct{})
	res := f.load(8, func() string { return b.url }, stop)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if o := f.mintOnce(b.url, false); o.kind == "audit_error" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	outs := <-res
	resp, err := http.Get(b.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"audit"`) {
		t.Errorf("/readyz on a full ledger volume: %d %s", resp.StatusCode, body)
	}
	f.check(t, "full disk (2 MiB tmpfs)", db, outs)
	if out, err := exec.Command("mount", "-o", "remount,size=16m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, out)
	}
	if o := f.mintOnce(b.url, true); o.status != 200 {
		t.Errorf("mint after the volume grew: %+v", o)
	}
	resp, err = http.Get(b.url + "/readyz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("/readyz after the volume grew: %d", resp.StatusCode)
		}
	}
	if code, out := verifyLedger(t, "--db", db); code != 0 {
		t.Fatalf("audit verify after the full disk: exit %d\n%s", code, out)
	}
}

func (f *faultEnv) ledgerLock(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.sqlite")
	b := f.startBroker(t, dir, db, "lock")
	waitHTTP(t, b.proc, b.url+"/readyz")
	lock, err := sql.Open("sqlite", db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	conn, err := lock.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	res := f.load(8, func() string { return b.url }, stop)
	time.Sleep(300 * time.Millisecond)
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // longer than the 2 s audit deadline
	conn.ExecContext(context.Background(), "ROLLBACK")
	time.Sleep(500 * time.Millisecond)
	close(stop)
	outs := <-res
	f.check(t, "ledger locked for 3 s (SQLite)", db, outs)
	if code, out := verifyLedger(t, "--db", db); code != 0 {
		t.Fatalf("audit verify after the lock: exit %d\n%s", code, out)
	}
}

func (f *faultEnv) frozenReplica(t *testing.T) {
	dsn := sqldbtest.PostgresDSN(t)
	a := f.startBroker(t, t.TempDir(), dsn, "replica-a")
	b := f.startBroker(t, t.TempDir(), dsn, "replica-b")
	waitHTTP(t, b.proc, b.url+"/readyz")
	measure := func(d time.Duration) (n int, worst time.Duration, outs []outcome) {
		stop := make(chan struct{})
		res := f.load(4, func() string { return b.url }, stop)
		time.Sleep(d)
		close(stop)
		outs = <-res
		for _, o := range outs {
			if o.status == 200 {
				n++
			}
			worst = max(worst, o.latency)
		}
		return n, worst, outs
	}
	// Replica A under load too, so that it is caught holding its chain
	// head when it is frozen.
	stopA := make(chan struct{})
	resA := f.load(4, func() string { return a.url }, stopA)
	const window = 4 * time.Second
	before, _, outs1 := measure(2 * time.Second)
	a.signal(syscall.SIGSTOP)
	during, worst, outs2 := measure(window)
	a.signal(syscall.SIGCONT)
	close(stopA)
	outsA := <-resA
	ratio := (float64(during) / window.Seconds()) / (float64(before) / 2)
	f.rep.mu.Lock()
	f.rep.freezeRatio, f.rep.freezeWorstMS, f.rep.freezeMeasured = ratio, float64(worst.Milliseconds()), true
	f.rep.mu.Unlock()
	f.check(t, "frozen replica (PostgreSQL, SIGSTOP 4 s)", dsn, append(append(outs1, outs2...), outsA...))
	if during == 0 {
		t.Fatal("replica B minted nothing while replica A was frozen")
	}
	if worst > time.Second {
		t.Errorf("a mint at replica B took %v while replica A was frozen", worst)
	}
	code, out := verifyLedger(t, "--db", dsn, "--json")
	var v struct {
		OK    bool              `json:"ok"`
		Heads map[string]string `json:"heads"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || !v.OK || len(v.Heads) != 2 {
		t.Fatalf("audit verify of the shared ledger: exit %d %s", code, out)
	}
}

func (f *faultEnv) forgedChain(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.sqlite")
	ckFile := filepath.Join(dir, "checkpoints.jsonl")
	b := f.startBroker(t, dir, db, "forge", "BROKER_AUDIT_CHECKPOINT_ROWS=10", "BROKER_AUDIT_CHECKPOINT_FILE="+ckFile)
	waitHTTP(t, b.proc, b.url+"/readyz")
	for range 30 {
		if o := f.mintOnce(b.url, false); o.status != 200 {
			t.Fatalf("mint: %+v", o)
		}
	}
	resp, err := http.Get(b.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o644)
	if err := b.proc.stop(t); err != nil {
		t.Fatalf("broker exit: %v", err)
	}

	// The runbook's backup, then verify on the copy, verbatim.
	if sqlite3, err := exec.LookPath("sqlite3"); err == nil {
		backup := filepath.Join(t.TempDir(), "audit.sqlite")
		if out, err := exec.Command(sqlite3, db, ".backup "+backup).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 .backup: %v %s", err, out)
		}
		if code, out := verifyLedger(t, "--db", backup); code != 0 || !strings.HasPrefix(out, "OK: 30 rows") {
			t.Fatalf("verify of the runbook backup: exit %d %s", code, out)
		}
	} else {
		f.rep.add("forged chain: sqlite3 not installed, runbook backup step not exercised")
	}

	code, out := verifyLedger(t, "--db", db, "--json")
	var v struct {
		Head string `json:"head"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Head == "" {
		t.Fatalf("verify before forging: %d %s", code, out)
	}
	work := filepath.Join(t.TempDir(), "forged.sqlite")
	// Edit row 5 and recompute every later hash, or cut the rows after 20
	// and fix the head.
	for _, tc := range []struct {
		forgery string
		how     audittest.Forgery
	}{
		{"edit and recompute", audittest.Forgery{From: 5, Edit: func(r *audit.Record) { r.RequesterWallet = "0xsomeoneelse" }}},
		{"truncate and fix the head", audittest.Forgery{KeepUpTo: 20, From: 1 << 62}},
	} {
		forgery := tc.forgery
		data, _ := os.ReadFile(db)
		os.WriteFile(work, data, 0o600)
		audittest.ForgeSQLite(t, work, "forge", tc.how)
		if code, out := verifyLedger(t, "--db", work); code != 0 {
			t.Fatalf("%s: the plain check should not see it: %d %s", forgery, code, out)
		}
		for _, extra := range [][]string{
			{"--expect-head", "forge=" + v.Head},
			{"--checkpoint", ckFile, "--jwks", jwksFile},
		} {
			code, out := verifyLedger(t, append([]string{"--db", work}, extra...)...)
			if code != 3 || strings.Count(out, "BROKEN") != 1 {
				t.Errorf("%s with %s: exit %d, output %q", forgery, extra[0], code, out)
			}
		}
	}
	f.rep.add("forged chain: edit-and-recompute and truncate-and-fix detected by --expect-head and by signed checkpoints (exit 3)")
}

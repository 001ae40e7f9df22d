package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as a fake scraper: with FAKE_SCRAPER=<mode> in
// its environment it reads a ScraperConfig from stdin and behaves as told.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FAKE_SCRAPER"); mode != "" {
		os.Exit(fakeScraper(mode))
	}
	os.Exit(m.Run())
}

func fakeScraper(mode string) int {
	raw, _ := io.ReadAll(os.Stdin)
	var cfg ScraperConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bad config:", err)
		return 3
	}
	em := NewEmitter(os.Stdout)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AGENTKEYS_PLANTED") {
			em.Emit(Event{Type: TypeError, Code: CodeInternal, Details: "parent environment leaked: " + kv})
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "[fake] signing up as %s\n", cfg.Email)
	em.Progress("navigating_to_signup")
	switch mode {
	case "success":
		em.Emit(Event{Type: TypeSuccess, APIKey: os.Getenv("FAKE_KEY")})
	case "echo-config":
		// Reports what it was given, through the key (tests only).
		b, _ := json.Marshal(map[string]any{"email": cfg.Email, "password_set": cfg.Password != "", "mail": cfg.Mail.Backend,
			"aws": os.Getenv("AWS_ACCESS_KEY_ID"), "diag": cfg.DiagDir != "", "signup": cfg.SignupURL})
		em.Emit(Event{Type: TypeSuccess, APIKey: string(b)})
	case "tripwire":
		em.Emit(Event{Type: TypeTripwire, Kind: TripCaptcha, Step: "signup_form", ElapsedMS: 1200, Details: "turnstile wall"})
	case "error-unknown-code":
		em.Emit(Event{Type: TypeError, Code: "brand_new_code", Details: "something new"})
	case "malformed":
		fmt.Println("this is not json")
		em.Emit(Event{Type: TypeSuccess, APIKey: "sk-never-used-0000000000000"})
	case "two-terminal":
		em.Emit(Event{Type: TypeError, Code: CodeSelectorMissing, Details: "x"})
		em.Emit(Event{Type: TypeError, Code: CodeInternal, Details: "abort"})
	case "exit-3":
		return 3
	case "wait-for-file":
		// Blocks until the test saw the progress event (proves streaming).
		for i := 0; i < 1000; i++ {
			if _, err := os.Stat(os.Getenv("FAKE_FILE")); err == nil {
				em.Emit(Event{Type: TypeSuccess, APIKey: os.Getenv("FAKE_KEY")})
				return 0
			}
			time.Sleep(10 * time.Millisecond)
		}
		return 4
	case "hang":
		// A grandchild (a stand-in for Chromium) that would outlive us.
		c := exec.Command("sleep", "300")
		if err := c.Start(); err != nil {
			return 5
		}
		os.WriteFile(os.Getenv("FAKE_FILE"), []byte(fmt.Sprint(c.Process.Pid)), 0o600)
		select {}
	case "fail-if-run":
		return 99
	}
	return 0
}

// fakeCommand runs this test binary as a scraper in mode.
func fakeCommand(t *testing.T) Command {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Command{Path: exe}
}

func fakeEnv(mode string, extra ...string) []string {
	return append(append(MinimalEnv(nil), "FAKE_SCRAPER="+mode), extra...)
}

// memBackend is an in-memory Backend.
type memBackend struct {
	mu       sync.Mutex
	creds    map[string]string
	audits   []string // "service result detail"
	inboxes  int
	storeErr error
	stores   int
}

func (b *memBackend) ReadCredential(_ context.Context, service string) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.creds[service]
	return []byte(v), ok, nil
}

func (b *memBackend) StoreCredential(_ context.Context, service string, v []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stores++
	if b.storeErr != nil {
		return b.storeErr
	}
	if b.creds == nil {
		b.creds = map[string]string{}
	}
	b.creds[service] = string(v)
	return nil
}

func (b *memBackend) AuditProvision(_ context.Context, service, result, detail string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.audits = append(b.audits, service+" "+result+" "+detail)
	return nil
}

func (b *memBackend) ProvisionInbox(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inboxes++
	return fmt.Sprintf("bot-%d@agentkeys-email.io", b.inboxes), nil
}

func (b *memBackend) audit() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.audits...)
}

package scraper

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/agentkeys/agentkeys/internal/provision/email"
	"github.com/agentkeys/agentkeys/internal/provision/fixture"
)

// TestCommand runs the hidden command as the orchestrator does: config
// JSON on stdin, events on stdout, log lines on stderr. Not parallel: it
// swaps openFetcher (the parallel tests never read it).
func TestCommand(t *testing.T) {
	needBrowser(t)
	site, in := newSite(t, fixture.Options{})
	saved := openFetcher
	openFetcher = func(cfg email.Config, _ *http.Client) (email.Fetcher, error) {
		if cfg.Backend != "fixture" {
			return nil, fmt.Errorf("unexpected backend %q", cfg.Backend)
		}
		return in, nil
	}
	defer func() { openFetcher = saved }()

	cfg := provision.ScraperConfig{
		Service:         "openrouter",
		SignupURL:       site.SignupURL("openrouter"),
		Email:           "bot-cmd@agentkeys.test",
		Password:        "Cmd-pass-1",
		KeyName:         "k1",
		Mail:            email.Config{Backend: "fixture"},
		DiagDir:         filepath.Join(t.TempDir(), "diag"),
		SelectorTimeout: 10 * time.Second,
		EmailTimeout:    10 * time.Second,
	}
	in2, _ := json.Marshal(cfg)
	var stdout, stderr bytes.Buffer
	cmd := NewCommand()
	if !cmd.Hidden || cmd.Use != "provision-scraper" {
		t.Fatalf("command %q hidden=%v", cmd.Use, cmd.Hidden)
	}
	cmd.SetIn(bytes.NewReader(in2))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs(nil)
	acquireBrowser(t)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("exit with error: %v\nstderr:\n%s", err, stderr.String())
	}
	_, ev := parseEvents(t, stdout.Bytes())
	keys := site.IssuedKeys()
	if ev.Type != provision.TypeSuccess || len(keys) != 1 || ev.APIKey != keys[0] {
		t.Fatalf("terminal %v, issued %d", ev, len(keys))
	}
	log := stderr.String()
	if !regexp.MustCompile(`(?m)^\[openrouter\] \d\d:\d\d:\d\d \S`).MatchString(log) {
		t.Errorf("log format:\n%s", log)
	}
	for _, s := range []string{cfg.Password, keys[0], site.Mails()[0].Code} {
		if strings.Contains(log, s) {
			t.Errorf("secret %s in stderr", provision.Mask(s))
		}
	}
}

func TestCommandBadInput(t *testing.T) {
	t.Parallel()
	for name, stdin := range map[string]string{
		"unknown field": `{"service":"openrouter","email":"a@b.test","password":"hunter2-secret","bogus":1}`,
		"not json":      `{"service":"openrouter","password":"hunter2-secret"`,
		"empty":         ``,
		"two documents": `{"service":"openrouter"} {"service":"openai"}`,
		"too large":     `{"service":"` + strings.Repeat("x", maxConfig) + `"}`,
		"wrong type":    `{"service":"openrouter","selector_timeout":"soon","password":"hunter2-secret"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := NewCommand()
			cmd.SetIn(strings.NewReader(stdin))
			cmd.SetOut(&stdout)
			cmd.SetErr(&stderr)
			cmd.SetArgs(nil)
			if err := cmd.Execute(); err != nil {
				t.Fatalf("exit with error: %v", err)
			}
			_, ev := parseEvents(t, stdout.Bytes())
			if ev.Type != provision.TypeError || ev.Code != provision.CodeMissingConfig {
				t.Fatalf("got %v", ev)
			}
			if strings.Contains(stdout.String()+stderr.String(), "hunter2") {
				t.Error("the input's password was echoed")
			}
		})
	}
}

// failWriter fails every write: the command cannot emit its event.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("broken pipe") }

func TestCommandCannotEmit(t *testing.T) {
	t.Parallel()
	cmd := NewCommand()
	cmd.SetIn(strings.NewReader(`{"service":"nope","email":"a@b.test"}`))
	cmd.SetOut(failWriter{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err == nil {
		t.Fatal("want an error (exit 1) when no terminal event could be written")
	}
}

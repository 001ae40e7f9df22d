package provision

import (
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/provision/email"
)

// The agent's scope is checked inside the orchestrator, for the CLI and
// the daemon alike: nothing is read, started, stored or audited.
func TestProvisionRefusesOutsideScopeBeforeAnything(t *testing.T) {
	for _, tc := range []struct {
		name    string
		scope   *agentkeys.Scope
		agent   bool
		refused bool
	}{
		{"outside scope", &agentkeys.Scope{Services: []string{"openai"}}, false, true},
		{"empty scope", &agentkeys.Scope{}, false, true},
		{"read-only agent session", &agentkeys.Scope{Services: []string{"openrouter"}, ReadOnly: true}, true, true},
		{"read-only agent, master stores", &agentkeys.Scope{Services: []string{"openrouter"}, ReadOnly: true}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey()
			h := newHarness(t, "success", key, key)
			h.opts.Scope, h.opts.AgentSession = tc.scope, tc.agent
			h.orch = New(h.opts)
			_, _, err := h.run(Request{Service: "openrouter"})
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if CodeOf(err) != CodeScopeDenied {
				t.Fatalf("err = %v, want %s", err, CodeScopeDenied)
			}
			if h.be.stores != 0 || len(h.be.audits) != 0 || h.be.inboxes != 0 {
				t.Fatalf("refused run touched the backend: %+v", h.be)
			}
		})
	}
}

// Mail settings come from one place: flags over the environment, secrets
// only from the environment, and what each backend needs is checked.
func TestReadMailSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name  string
		flags MailSettings
		env   map[string]string
		check func(MailSettings) bool
		err   string
	}{
		{"default is mock", MailSettings{}, nil, func(m MailSettings) bool { return m.Mail.Backend == "" }, ""},
		{"env imap", MailSettings{}, map[string]string{EnvEmailBackend: "imap", EnvIMAPAddr: "h:993", EnvIMAPUser: "u", EnvIMAPPassword: "pw", EnvSignupEmail: "a@b"},
			func(m MailSettings) bool {
				return m.Mail.Backend == email.BackendIMAP && m.Mail.IMAPAddr == "h:993" && m.Mail.IMAPPassword == "pw" && m.SignupEmail == "a@b"
			}, ""},
		{"flag beats env", MailSettings{Mail: email.Config{Backend: "ses", SESBucket: "flagbucket"}, SignupEmail: "f@b"}, map[string]string{EnvEmailBackend: "imap", EnvSESBucket: "envbucket", EnvSignupPassword: "sp"},
			func(m MailSettings) bool {
				return m.Mail.Backend == email.BackendSES && m.Mail.SESBucket == "flagbucket" && m.Password == "sp"
			}, ""},
		{"password never from flags", MailSettings{Mail: email.Config{Backend: "imap", IMAPAddr: "h", IMAPUser: "u", IMAPPassword: "argv"}, SignupEmail: "a@b"}, nil, nil, EnvIMAPPassword},
		{"ses needs bucket", MailSettings{Mail: email.Config{Backend: "ses"}, SignupEmail: "a@b"}, nil, nil, "--ses-bucket"},
		{"non-mock needs address", MailSettings{Mail: email.Config{Backend: "ses", SESBucket: "b"}}, nil, nil, "--email"},
		{"unknown backend", MailSettings{}, map[string]string{EnvEmailBackend: "pigeon"}, nil, "mock, imap or ses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadMailSettings(tc.flags, env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.err)
				}
				return
			}
			if err != nil || !tc.check(m) {
				t.Fatalf("%+v, %v", m, err)
			}
		})
	}
}

// NewForSession runs this executable's scraper subcommand and points the
// mock inbox at the session's backend.
func TestNewForSessionDefaults(t *testing.T) {
	tok := agentkeys.NewToken()
	o, err := NewForSession(Session{BackendURL: "http://127.0.0.1:1", Token: tok, Agent: agentkeys.NewWallet()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.o.Scraper.Args) != 1 || o.o.Scraper.Args[0] != ScraperSubcommand || o.o.Scraper.Path == "" {
		t.Fatalf("scraper %+v", o.o.Scraper)
	}
	if o.o.Mail.Backend != email.BackendMock || o.o.Mail.BackendURL != "http://127.0.0.1:1" || o.o.Mail.SessionToken != tok.Reveal() {
		t.Fatalf("mail %+v", o.o.Mail.Backend)
	}
	if o.o.AWSEnv != nil {
		t.Fatal("AWS credentials without a broker")
	}
}

package email

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

const (
	imapUser     = "bot@bots.example.org"
	imapPassword = "app-password-SECRET-42"
)

// spySession reports every SEARCH the client sends.
type spySession struct {
	imapserver.Session
	searches chan<- struct{}
}

func (s *spySession) Search(kind imapserver.NumKind, c *imap.SearchCriteria, o *imap.SearchOptions) (*imap.SearchData, error) {
	d, err := s.Session.Search(kind, c, o)
	select {
	case s.searches <- struct{}{}:
	default:
	}
	return d, err
}

type testIMAP struct {
	addr     string
	user     *imapmemserver.User
	searches chan struct{}
	cert     *x509.Certificate
}

// startIMAP serves an in-memory mailbox on 127.0.0.1; withTLS uses
// implicit TLS with a fresh self-signed certificate.
func startIMAP(t *testing.T, withTLS bool) *testIMAP {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(imapUser, imapPassword)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	ti := &testIMAP{user: u, searches: make(chan struct{}, 100)}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &spySession{Session: mem.NewSession(), searches: ti.searches}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if withTLS {
		cert, leaf := selfSigned(t)
		ti.cert = leaf
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	ti.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ti
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return int64(l.Len()) }

// add appends a message that arrived at arrived.
func (ti *testIMAP) add(t *testing.T, raw string, arrived time.Time) {
	t.Helper()
	if err := ti.appendMsg(raw, arrived); err != nil {
		t.Fatal(err)
	}
}

func (ti *testIMAP) appendMsg(raw string, arrived time.Time) error {
	_, err := ti.user.Append("INBOX", literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{Time: arrived})
	return err
}

func rawMail(from, to, subject string, date time.Time, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to, subject, date.Format(time.RFC1123Z), date.UnixNano(), body)
}

func (ti *testIMAP) fetcher(t *testing.T, password string) Fetcher {
	t.Helper()
	f, err := Open(Config{Backend: BackendIMAP, IMAPAddr: ti.addr, IMAPUser: imapUser, IMAPPassword: password,
		IMAPInsecure: ti.cert == nil, PollInterval: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ti.cert != nil {
		pool := x509.NewCertPool()
		pool.AddCert(ti.cert)
		f.(*imapFetcher).tlsConfig = &tls.Config{RootCAs: pool}
	}
	return f
}

var openRouterQuery = Query{
	To:      imapUser,
	From:    regexp.MustCompile(`notifications@openrouter\.ai`),
	Subject: regexp.MustCompile(`(?i)sign.?(up|in) link|verify|code`),
}

func TestIMAPCodeArrivesLater(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			ti := startIMAP(t, withTLS)
			now := time.Now()
			from := "OpenRouter <notifications@openrouter.ai>"
			ti.add(t, rawMail(from, imapUser, "Your login code", now.Add(-time.Hour), "Your login code is 111111"), now.Add(-time.Hour))
			ti.add(t, rawMail("Evil <notifications@evil.example>", imapUser, "Your login code", now, "Your login code is 222222"), now)
			ti.add(t, rawMail(from, "someone-else@bots.example.org", "Your login code", now, "Your login code is 333333"), now)
			f := ti.fetcher(t, imapPassword)
			go func() {
				<-ti.searches // the first poll saw nothing usable
				for _, raw := range []string{
					rawMail(from, "Bot <"+strings.ToUpper(imapUser)+">", "Your login code", time.Now(), "Your login code is 444444"),
					rawMail(from, imapUser, "Weekly credit summary from OpenRouter", time.Now(), "You used 555555 tokens"),
				} {
					if err := ti.appendMsg(raw, time.Now()); err != nil {
						t.Error(err)
					}
				}
			}()
			m := fetchSince(t, f, openRouterQuery, now)
			if a := Analyze(m, ExpectOTP); a.Code != "444444" {
				t.Fatalf("got %+v (%+v)", a, m)
			}
			if m.Arrived.IsZero() {
				t.Fatal("no arrival time")
			}
		})
	}
}

func TestIMAPNewestFirst(t *testing.T) {
	ti := startIMAP(t, false)
	now := time.Now()
	from := "OpenRouter <notifications@openrouter.ai>"
	ti.add(t, rawMail(from, imapUser, "Your login code", now.Add(time.Second), "Your login code is 100001"), now.Add(time.Second))
	ti.add(t, rawMail(from, imapUser, "Your login code", now.Add(2*time.Second), "Your login code is 100002"), now.Add(2*time.Second))
	q := openRouterQuery
	q.Since = now
	m, err := fetchWithin(ti.fetcher(t, imapPassword), q, 5*time.Second)
	if err != nil || Analyze(m, ExpectOTP).Code != "100002" {
		t.Fatalf("%v %+v", err, m)
	}
}

func TestIMAPTimeoutIgnoresOldWrongSenderOtherRecipient(t *testing.T) {
	ti := startIMAP(t, false)
	now := time.Now()
	from := "OpenRouter <notifications@openrouter.ai>"
	ti.add(t, rawMail(from, imapUser, "Your login code", now.Add(-time.Hour), "Your login code is 111111"), now.Add(-time.Hour))
	ti.add(t, rawMail(from, imapUser, "Your login code", now.Add(-time.Hour), "old Date header: 121212"), now) // arrived now, written an hour ago
	ti.add(t, rawMail("Evil <notifications@evil.example>", imapUser, "Your login code", now, "Your login code is 222222"), now)
	ti.add(t, rawMail(from, "someone-else@bots.example.org", "Your login code", now, "Your login code is 333333"), now)
	q := openRouterQuery
	q.Since = now
	_, err := fetchWithin(ti.fetcher(t, imapPassword), q, 150*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	for _, w := range []string{"stale=2", "from_rejected=1", "other_recipient=1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v lacks %s", err, w)
		}
	}
}

func TestIMAPBadPassword(t *testing.T) {
	ti := startIMAP(t, false)
	_, err := fetchWithin(ti.fetcher(t, "wrong-SECRET-pw"), Query{To: imapUser}, 5*time.Second)
	if !errors.Is(err, ErrBackendDown) || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), "login") {
		t.Fatalf("unclear: %v", err)
	}
}

func TestIMAPUnreachableAndBadMailbox(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, err := Open(Config{Backend: "imap", IMAPAddr: addr, IMAPUser: "u", IMAPPassword: "p", IMAPInsecure: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.Fetch(ctx, Query{To: "x@y.example"}); !errors.Is(err, ErrBackendDown) {
		t.Fatalf("got %v", err)
	}

	ti := startIMAP(t, false)
	f2, err := Open(Config{Backend: "imap", IMAPAddr: ti.addr, IMAPUser: imapUser, IMAPPassword: imapPassword, IMAPInsecure: true, IMAPMailbox: "Nope"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Fetch(ctx, Query{To: imapUser}); !errors.Is(err, ErrBackendDown) || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("got %v", err)
	}

	// A TLS client against a plain server fails fast too.
	f3, _ := Open(Config{Backend: "imap", IMAPAddr: ti.addr, IMAPUser: imapUser, IMAPPassword: imapPassword}, nil)
	if _, err := f3.Fetch(ctx, Query{To: imapUser}); !errors.Is(err, ErrBackendDown) {
		t.Fatalf("got %v", err)
	}
}

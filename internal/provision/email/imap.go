package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapFetcher polls one IMAP mailbox. Each Fetch logs in once, keeps the
// connection for its polls (reconnecting after a transient failure) and
// logs out at the end.
type imapFetcher struct {
	addr, host     string
	user, password string
	mailbox        string
	insecure       bool
	every          time.Duration
	tlsConfig      *tls.Config // tests: trust a test CA
	dialTimeout    time.Duration
}

func openIMAP(cfg Config) (Fetcher, error) {
	var missing []string
	if strings.TrimSpace(cfg.IMAPAddr) == "" {
		missing = append(missing, "imap_addr")
	}
	if cfg.IMAPUser == "" {
		missing = append(missing, "imap_user")
	}
	if cfg.IMAPPassword == "" {
		missing = append(missing, "imap_password")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("email: the imap backend needs %s", strings.Join(missing, ", "))
	}
	addr := strings.TrimSpace(cfg.IMAPAddr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), "993"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
		return nil, fmt.Errorf("email: imap_addr must be host or host:port, got %q", cfg.IMAPAddr)
	}
	mbox := cfg.IMAPMailbox
	if mbox == "" {
		mbox = "INBOX"
	}
	return &imapFetcher{
		addr: net.JoinHostPort(host, port), host: host,
		user: cfg.IMAPUser, password: cfg.IMAPPassword,
		mailbox: mbox, insecure: cfg.IMAPInsecure,
		every: pollInterval(cfg.PollInterval), dialTimeout: 15 * time.Second,
	}, nil
}

// imapSession is one logged-in connection with the mailbox selected.
type imapSession struct {
	c    *imapclient.Client
	stop func() bool
}

func (s *imapSession) close() {
	if s == nil {
		return
	}
	s.stop()
	done := make(chan struct{})
	go func() { _ = s.c.Logout().Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	_ = s.c.Close()
}

// redact removes the password from a server-provided message.
func (f *imapFetcher) redact(s string) string {
	if f.password != "" {
		s = strings.ReplaceAll(s, f.password, "***")
	}
	return s
}

func (f *imapFetcher) connect(ctx context.Context) (*imapSession, error) {
	nd := &net.Dialer{Timeout: f.dialTimeout, KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	if f.insecure {
		conn, err = nd.DialContext(ctx, "tcp", f.addr)
	} else {
		cfg := f.tlsConfig
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = f.host
		}
		cfg.MinVersion = tls.VersionTLS12
		conn, err = (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(ctx, "tcp", f.addr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, down("imap: connect to %s: %v", f.addr, err)
	}
	c := imapclient.New(conn, &imapclient.Options{})
	// imapclient commands take no context: closing the connection is what
	// unblocks them when ctx ends.
	s := &imapSession{c: c, stop: context.AfterFunc(ctx, func() { _ = c.Close() })}
	fail := func(e error) (*imapSession, error) {
		s.stop()
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e
	}
	if err := c.WaitGreeting(); err != nil {
		return fail(down("imap: %s: no greeting: %v", f.addr, err))
	}
	if err := c.Login(f.user, f.password).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return fail(permanent("imap: login as %s at %s failed: %s", f.user, f.addr, f.redact(ie.Text)))
		}
		return fail(down("imap: login at %s: %v", f.addr, err))
	}
	if _, err := c.Select(f.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return fail(permanent("imap: select mailbox %q: %s", f.mailbox, ie.Text))
		}
		return fail(down("imap: select mailbox %q: %v", f.mailbox, err))
	}
	return s, nil
}

func (f *imapFetcher) Fetch(ctx context.Context, q Query) (Message, error) {
	flt, err := newFilter(q)
	if err != nil {
		return Message{}, err
	}
	var sess *imapSession
	defer func() { sess.close() }()
	return poll(ctx, f.every, flt, func(ctx context.Context) (Message, bool, error) {
		if sess == nil {
			s, err := f.connect(ctx)
			if err != nil {
				return Message{}, false, err
			}
			sess = s
		}
		m, ok, err := f.check(sess.c, flt)
		if err != nil {
			sess.close() // reconnect on the next poll
			sess = nil
			if ctx.Err() != nil {
				return Message{}, false, ctx.Err()
			}
		}
		return m, ok, err
	})
}

// check searches for unseen messages since the cutoff and returns the
// newest that matches.
func (f *imapFetcher) check(c *imapclient.Client, flt *filter) (Message, bool, error) {
	// NOOP makes the server report mail that arrived since the last poll.
	if err := c.Noop().Wait(); err != nil {
		return Message{}, false, down("imap: %v", err)
	}
	crit := &imap.SearchCriteria{}
	if !flt.cutoff.IsZero() {
		// SINCE compares dates only, in the server's time zone: go back a
		// day and let the filter compare exact times.
		crit.Since = flt.cutoff.Add(-24 * time.Hour)
	}
	sd, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return Message{}, false, down("imap: search: %v", err)
	}
	var uids []imap.UID
	for _, u := range sd.AllUIDs() {
		if !flt.seen[imapKey(u)] {
			uids = append(uids, u)
		}
	}
	if len(uids) == 0 {
		return Message{}, false, nil
	}
	slices.Sort(uids)
	slices.Reverse(uids) // newest first
	const batch = 20
	for len(uids) > 0 {
		n := min(batch, len(uids))
		part := uids[:n]
		uids = uids[n:]
		bufs, err := c.Fetch(imap.UIDSetNum(part...), &imap.FetchOptions{
			UID:          true,
			InternalDate: true,
			BodySection:  []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: MaxMessageSize}}},
		}).Collect()
		if err != nil {
			return Message{}, false, down("imap: fetch: %v", err)
		}
		var ms []Message
		for _, b := range bufs {
			flt.seen[imapKey(b.UID)] = true
			var raw []byte
			for _, s := range b.BodySection {
				raw = s.Bytes
				break
			}
			m, err := ParseMIME(raw)
			if err != nil {
				flt.reject("unparsable")
				continue
			}
			m.Arrived = b.InternalDate
			if m.ID == "" {
				m.ID = "uid:" + strconv.FormatUint(uint64(b.UID), 10)
			}
			ms = append(ms, m)
		}
		newestFirst(ms)
		for _, m := range ms {
			if flt.match(m) {
				return m, true, nil
			}
		}
		// Everything older than the cutoff lies further down: stop early
		// when a whole batch arrived before it.
		allStale := len(bufs) > 0
		for _, b := range bufs {
			if !flt.stale(b.InternalDate) {
				allStale = false
			}
		}
		if allStale {
			for _, u := range uids {
				flt.seen[imapKey(u)] = true
			}
			break
		}
	}
	return Message{}, false, nil
}

func imapKey(u imap.UID) string { return "uid:" + strconv.FormatUint(uint64(u), 10) }

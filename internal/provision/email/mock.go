package email

import (
	"context"
	"errors"
	"io"
	"mime/quotedprintable"
	"net/http"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// mockFetcher reads the agentkeys backend's mock inbox:
// GET {BackendURL}/mock/inbox/messages?address=<q.To>&since=<RFC3339>.
type mockFetcher struct {
	c     *backendclient.Client
	tok   agentkeys.Token
	every time.Duration
}

func openMock(cfg Config, hc *http.Client) (Fetcher, error) {
	if strings.TrimSpace(cfg.BackendURL) == "" {
		return nil, errors.New("email: the mock backend needs backend_url (the agentkeys backend, e.g. http://127.0.0.1:8090)")
	}
	if cfg.SessionToken == "" {
		return nil, errors.New("email: the mock backend needs session_token (a session that owns the inbox)")
	}
	var opts []backendclient.Option
	if hc != nil {
		opts = append(opts, backendclient.WithHTTPClient(hc))
	}
	c, err := backendclient.New(cfg.BackendURL, opts...)
	if err != nil {
		return nil, errors.New("email: mock backend_url: " + err.Error())
	}
	return &mockFetcher{c: c, tok: agentkeys.Token(cfg.SessionToken), every: pollInterval(cfg.PollInterval)}, nil
}

func (mf *mockFetcher) Fetch(ctx context.Context, q Query) (Message, error) {
	f, err := newFilter(q)
	if err != nil {
		return Message{}, err
	}
	return poll(ctx, mf.every, f, func(ctx context.Context) (Message, bool, error) {
		list, err := mf.c.InboxMessages(ctx, mf.tok, q.To, f.cutoff)
		if err != nil {
			return Message{}, false, mockError(err, q.To)
		}
		var fresh []Message
		for _, im := range list {
			if f.seen[im.MsgID] {
				continue
			}
			f.seen[im.MsgID] = true
			fresh = append(fresh, mockMessage(im, q.To))
		}
		newestFirst(fresh)
		for _, m := range fresh {
			if f.match(m) {
				return m, true, nil
			}
		}
		return Message{}, false, nil
	})
}

// mockError maps a backend client error; the session token is never part
// of it (backendclient errors carry only the operation and the backend's
// own message).
func mockError(err error, address string) error {
	var be *backendclient.Error
	if errors.As(err, &be) {
		switch be.Status {
		case http.StatusUnauthorized:
			return permanent("mock inbox: the backend rejected the session token (401 %s)", be.Kind)
		case http.StatusForbidden:
			return permanent("mock inbox: the session does not own inbox %s (403 %s)", address, be.Kind)
		case http.StatusNotFound:
			return permanent("mock inbox: inbox %s not found, or the backend does not serve /mock/inbox (404 %s)", address, be.Kind)
		case http.StatusBadRequest:
			return permanent("mock inbox: %s", be.Error())
		}
		return down("mock inbox: %s", be.Error())
	}
	return down("mock inbox: %v", err)
}

// mockMessage turns a mock inbox entry into a Message. The body may be a
// full raw message (parsed), HTML, or plain text (possibly left
// quoted-printable by a sender that copied it from a raw mail).
func mockMessage(im backendclient.InboxMessage, address string) Message {
	m := Message{ID: im.MsgID}
	if looksLikeMIME(im.Body) {
		if pm, err := ParseMIME([]byte(im.Body)); err == nil {
			m = pm
			m.ID = im.MsgID
		}
	}
	if m.Text == "" && m.HTML == "" && !looksLikeMIME(im.Body) {
		body := im.Body
		if looksQP(body) {
			if b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body))); err == nil {
				body = string(b)
			}
		}
		if looksHTML(body) {
			m.HTML = body
		} else {
			m.Text = body
		}
	}
	if im.From != "" {
		m.From = im.From
	}
	if im.Subject != "" {
		m.Subject = im.Subject
	}
	if im.ReceivedAt > 0 {
		m.Arrived = time.Unix(im.ReceivedAt, 0)
	}
	// The inbox is the recipient, whatever the body's headers say.
	m.To = append([]string{address}, m.To...)
	return m
}

// looksQP reports whether s carries quoted-printable escapes or soft
// line breaks.
func looksQP(s string) bool {
	return strings.Contains(s, "=3D") || strings.Contains(s, "=\r\n") || strings.Contains(s, "=\n") ||
		strings.Contains(s, "=20\n") || strings.Contains(s, "=2E")
}

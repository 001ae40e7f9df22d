package email

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/jhillyerd/enmime/v2"
)

// MaxMessageSize bounds the raw messages the backends read (and
// ParseMIME accepts); sign-up mails are a few tens of kilobytes.
const MaxMessageSize = 16 << 20

// parser keeps text/plain empty when a mail has only HTML (Analyze strips
// the HTML itself, dropping style blocks and hidden preheaders) and keeps
// the text of a part whose base64 is corrupt.
var parser = enmime.NewParser(
	enmime.DisableTextConversion(true),
	enmime.SkipMalformedParts(true),
	enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
)

// recipientHeaders are the headers whose addresses count as recipients.
var recipientHeaders = []string{
	"To", "Cc", "Bcc", "Delivered-To", "X-Original-To", "X-Forwarded-To",
	"Envelope-To", "X-Envelope-To", "X-Rcpt-To", "X-Receiver", "X-Recipient",
	"Resent-To", "Resent-Cc", "X-Apparently-To",
}

// ParseMIME parses a raw RFC 5322 message: RFC 2047 encoded headers,
// quoted-printable and base64 bodies, nested multiparts and non-UTF-8
// charsets (via enmime). Text is the text/plain part and HTML the
// text/html part, both decoded to UTF-8; either may be empty.
func ParseMIME(raw []byte) (m Message, err error) {
	// Mail is untrusted input: a parser bug must not take the scraper down.
	defer func() {
		if r := recover(); r != nil {
			m, err = Message{}, fmt.Errorf("email: parse message: malformed input (%v)", r)
		}
	}()
	if len(raw) > MaxMessageSize {
		return Message{}, fmt.Errorf("email: message is larger than %d bytes", MaxMessageSize)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return Message{}, errors.New("email: empty message")
	}
	env, err := parser.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("email: parse message: %w", err)
	}
	m = Message{
		ID:      strings.Trim(strings.TrimSpace(env.GetHeader("Message-Id")), "<>"),
		From:    strings.TrimSpace(env.GetHeader("From")),
		Subject: strings.TrimSpace(env.GetHeader("Subject")),
		Text:    env.Text,
		HTML:    env.HTML,
	}
	if d, err := env.Date(); err == nil {
		m.Date = d
	}
	if al, err := env.AddressList("To"); err == nil {
		for _, a := range al {
			if a != nil && a.Address != "" {
				m.To = append(m.To, a.Address)
			}
		}
	} else if v := env.GetHeader("To"); v != "" {
		m.To = addressesIn(v)
	}
	seen := map[string]bool{}
	add := func(addr string) {
		addr = strings.ToLower(strings.TrimSpace(addr))
		if addr != "" && !seen[addr] {
			seen[addr] = true
			m.Recipients = append(m.Recipients, addr)
		}
	}
	for _, h := range recipientHeaders {
		for _, v := range env.GetHeaderValues(h) {
			for _, a := range headerAddresses(v) {
				add(a)
			}
		}
	}
	for _, v := range env.GetHeaderValues("Received") {
		for _, sm := range receivedFor().FindAllStringSubmatch(v, -1) {
			add(sm[1])
		}
	}
	return m, nil
}

// receivedFor finds "for <addr>" / "for addr;" in a Received header.
var receivedFor = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\bfor\s+<?([^\s<>;,"]+@[^\s<>;,"]+?)>?\s*(?:;|$|\s)`)
})

// addrSpec is a loose addr-spec, used when an address list does not parse.
var addrSpec = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`[A-Za-z0-9._%+\-=!#$&'*/?^{|}~]+@[A-Za-z0-9.\-\[\]:]+[A-Za-z0-9\]]`)
})

// headerAddresses returns the addresses of an address-list header value,
// falling back to a loose scan when it does not parse.
func headerAddresses(v string) []string {
	if al, err := enmime.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(al))
		for _, a := range al {
			if a != nil && a.Address != "" {
				out = append(out, a.Address)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return addressesIn(v)
}

func addressesIn(s string) []string { return addrSpec().FindAllString(s, -1) }

// looksLikeMIME reports whether s starts with a header block (a raw
// message rather than a bare body), e.g. "From: …\r\n…\r\n\r\nbody".
func looksLikeMIME(s string) bool {
	s = strings.TrimLeft(s, "\r\n")
	end := strings.Index(s, "\n\n")
	if e2 := strings.Index(s, "\r\n\r\n"); e2 >= 0 && (end < 0 || e2 < end) {
		end = e2
	}
	if end <= 0 {
		return false
	}
	known := 0
	for i, line := range strings.Split(strings.ReplaceAll(s[:end], "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if i == 0 {
				return false
			}
			continue // folded continuation
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return false
		}
		switch strings.ToLower(name) {
		case "from", "to", "subject", "date", "mime-version", "content-type",
			"message-id", "received", "return-path", "delivered-to", "content-transfer-encoding":
			known++
		}
	}
	return known >= 2
}

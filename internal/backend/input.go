package backend

import (
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// MaxChildTTL bounds ttl_seconds on POST /session/child (a child is also
// never given more than its parent's remaining life).
const MaxChildTTL = 10 * 365 * 24 * time.Hour

// checkQuery applies the text rule (package textcheck) to every query
// parameter name and value before a handler runs, so a NUL, broken UTF-8
// or a control character in a filter, request id or identity value is a
// 400 on both database engines instead of reaching the store.
func checkQuery(r *http.Request) error {
	for k, vs := range r.URL.Query() {
		if err := textcheck.Check(k, 64); err != nil {
			return badRequest("query parameter name: %v", err)
		}
		for _, v := range vs {
			if err := textcheck.Check(v, textcheck.MaxLen); err != nil {
				return badRequest("%s: %v", truncateStr(k), err)
			}
		}
	}
	return nil
}

// checkBody applies the text rule to every string of a decoded body.
func checkBody(v any) error {
	if err := textcheck.CheckStrings(v); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

// checkTTL refuses ttl_seconds outside 0 (the default) .. MaxChildTTL.
func checkTTL(sec int64) error {
	if sec < 0 || sec > int64(MaxChildTTL/time.Second) {
		return badRequest("ttl_seconds must be from 1 to %d (0: the default)", int64(MaxChildTTL/time.Second))
	}
	return nil
}

func truncateStr(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

package testkit

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// WantMCPBearerRequired posts an MCP initialize request to endpoint with
// no Authorization header, a wrong bearer, token with a byte added and
// token as Basic credentials, and fails t unless each is refused with 401,
// a Bearer challenge and no JSON-RPC in the body.
func WantMCPBearerRequired(t testing.TB, endpoint, token string) {
	t.Helper()
	initReq := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`
	for _, auth := range []string{"", "Bearer wrong-" + token[:len(token)/2], "Bearer " + token + "x", "Basic " + token} {
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(initReq))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("Authorization %q: status %d (WWW-Authenticate %q), want 401\n%s", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if strings.Contains(string(body), "jsonrpc") {
			t.Fatalf("unauthenticated request reached the MCP server: %s", body)
		}
	}
}

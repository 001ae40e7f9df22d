package testkit

import (
	"io"
	"net/http"
	"testing"
)

// GetStatus sends GET url with the Authorization header auth (none when
// auth is empty) and returns the response status; the body is discarded.
// A transport error is fatal.
func GetStatus(t testing.TB, url, auth string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

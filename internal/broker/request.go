package broker

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// bearer extracts the session token. On failure it returns a reason safe
// for the client; the hash is of whatever credential was presented ("" when
// none), so failed attempts can be correlated without storing them.
func bearer(r *http.Request) (token string, hash string, reason string) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", "", "missing Authorization header"
	}
	if len(vals) > 1 {
		return "", "", "more than one Authorization header"
	}
	h := vals[0]
	if len(h) > maxAuthHeader {
		return "", string(agentkeys.HashSecret(h)), "Authorization header too long"
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", string(agentkeys.HashSecret(h)), "Authorization header must be \"Bearer <session token>\""
	}
	raw := strings.TrimSpace(rest)
	hash = string(agentkeys.HashSecret(raw))
	tok, err := agentkeys.ParseToken(raw)
	if err != nil {
		return "", hash, "malformed bearer token"
	}
	return tok.Reveal(), hash, ""
}

// decodeMintBody accepts an empty body or "{}"; anything else must decode
// strictly (unknown fields rejected) within MaxBodyBytes.
func decodeMintBody(r *http.Request) *jsonhttp.Error {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "bad request: could not read the request body")
	}
	if len(body) > MaxBodyBytes {
		return jsonhttp.Errorf(http.StatusRequestEntityTooLarge, KindBadRequest, "bad request: request body exceeds %d bytes", MaxBodyBytes)
	}
	return decodeMintBytes(body, r.Header.Get("Content-Type"))
}

func decodeMintBytes(body []byte, contentType string) *jsonhttp.Error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	if string(trimmed) == "null" {
		return jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "bad request: request body must be a JSON object")
	}
	req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var m api.MintRequest
	if e := jsonhttp.Decode(nil, req, &m, MaxBodyBytes); e != nil {
		return jsonhttp.Errorf(e.Status, KindBadRequest, "bad request: %s", e.Message)
	}
	return nil
}

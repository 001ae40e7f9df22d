package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// JSON-RPC 2.0 error codes.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcInternal       = -32603
	// Application errors (data.code carries the stable name).
	rpcDenied      = -32001
	rpcNotFound    = -32002
	rpcAuthFailed  = -32003
	rpcUnreachable = -32004
	rpcAppError    = -32000
)

// MaxRequestLine bounds one request line on the socket.
const MaxRequestLine = 64 << 10

// rpcRequest is a parsed JSON-RPC request.
type rpcRequest struct {
	Method string
	Params json.RawMessage // nil when absent
	ID     json.RawMessage // nil for a notification; "null" is a valid id
}

type rpcError struct {
	Code    int
	Message string
	Data    string // stable code
}

// parseRequest parses one request line strictly: a JSON object with
// "jsonrpc":"2.0", a string method, optional params (object or array) and
// an optional id (string, number or null). Errors never quote the input.
func parseRequest(line []byte) (rpcRequest, *rpcError) {
	var req rpcRequest
	line = bytes.TrimSpace(line)
	if len(line) > MaxRequestLine {
		return req, &rpcError{Code: rpcInvalidRequest, Message: "request line too long", Data: CodeInvalidParams}
	}
	if !utf8.Valid(line) {
		return req, &rpcError{Code: rpcParseError, Message: "request is not valid UTF-8", Data: CodeInvalidParams}
	}
	if !json.Valid(line) {
		return req, &rpcError{Code: rpcParseError, Message: "parse error: request is not valid JSON", Data: CodeInvalidParams}
	}
	if line[0] == '[' {
		return req, &rpcError{Code: rpcInvalidRequest, Message: "batch requests are not supported", Data: CodeInvalidParams}
	}
	if line[0] != '{' {
		return req, &rpcError{Code: rpcInvalidRequest, Message: "request must be a JSON object", Data: CodeInvalidParams}
	}
	var raw struct {
		JSONRPC *string         `json:"jsonrpc"`
		Method  *string         `json:"method"`
		Params  json.RawMessage `json:"params"`
		ID      json.RawMessage `json:"id"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return req, &rpcError{Code: rpcInvalidRequest, Message: "invalid request: unknown or mistyped member", Data: CodeInvalidParams}
	}
	// The id is parsed before anything else can fail so that the error
	// response can carry it.
	if raw.ID != nil {
		switch c := raw.ID[0]; {
		case c == '"', c == 'n':
			req.ID = raw.ID
		case c == '-' || ('0' <= c && c <= '9'):
			// Integers only (JSON-RPC: numbers SHOULD NOT have fractions),
			// so every client can decode the id it gets back.
			if _, err := strconv.ParseInt(string(raw.ID), 10, 64); err != nil {
				return req, &rpcError{Code: rpcInvalidRequest, Message: "a numeric id must be an integer", Data: CodeInvalidParams}
			}
			req.ID = raw.ID
		default:
			return req, &rpcError{Code: rpcInvalidRequest, Message: "id must be a string, an integer or null", Data: CodeInvalidParams}
		}
	}
	if raw.JSONRPC == nil || *raw.JSONRPC != "2.0" {
		return req, &rpcError{Code: rpcInvalidRequest, Message: `"jsonrpc" must be "2.0"`, Data: CodeInvalidParams}
	}
	if raw.Method == nil || *raw.Method == "" {
		return req, &rpcError{Code: rpcInvalidRequest, Message: "method must be a non-empty string", Data: CodeInvalidParams}
	}
	req.Method = *raw.Method
	if raw.Params != nil && !bytes.Equal(raw.Params, []byte("null")) {
		if raw.Params[0] != '{' && raw.Params[0] != '[' {
			return req, &rpcError{Code: rpcInvalidRequest, Message: "params must be an object or an array", Data: CodeInvalidParams}
		}
		req.Params = raw.Params
	}
	return req, nil
}

// decodeParams decodes object params strictly into v. Absent params decode
// as {}.
func decodeParams(p json.RawMessage, v any) *rpcError {
	if p == nil {
		p = []byte("{}")
	}
	if p[0] != '{' {
		return &rpcError{Code: rpcInvalidParams, Message: "params must be an object", Data: CodeInvalidParams}
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &rpcError{Code: rpcInvalidParams, Message: "invalid params: unknown or mistyped member", Data: CodeInvalidParams}
	}
	return nil
}

func rpcErrorFor(err error) *rpcError {
	e := classify(err)
	code := rpcAppError
	switch e.Code {
	case CodeDenied, CodeDisabled:
		code = rpcDenied
	case CodeNotFound:
		code = rpcNotFound
	case CodeAuthFailed:
		code = rpcAuthFailed
	case CodeUnreachable:
		code = rpcUnreachable
	case CodeInvalidParams:
		code = rpcInvalidParams
	case CodeInternal:
		code = rpcInternal
	}
	return &rpcError{Code: code, Message: e.Message, Data: e.Code}
}

// appendResponseHead appends `{"jsonrpc":"2.0","id":<id>,"result":`.
func appendResponseHead(dst []byte, id json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		id = []byte("null")
	}
	dst = append(dst, id...)
	return append(dst, `,"result":`...)
}

func appendErrorResponse(dst []byte, id json.RawMessage, e *rpcError) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		id = []byte("null")
	}
	dst = append(dst, id...)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, []byte(e.Message))
	if e.Data != "" {
		dst = append(dst, `,"data":{"code":`...)
		dst = appendJSONString(dst, []byte(e.Data))
		dst = append(dst, '}')
	}
	return append(dst, "}}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string without converting it to a
// Go string (so a secret stays in buffers the caller can clear). Invalid
// UTF-8 is replaced by U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

var errLineTooLong = errors.New("request line too long")

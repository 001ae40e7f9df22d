package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// The scraper speaks to the orchestrator in JSON lines on its stdout: one
// Event per line, discriminated by "type". Exactly one terminal event
// (success, error or tripwire) ends a run; progress and assist may come
// before it any number of times. stderr is free text for humans.

// Event types.
const (
	TypeProgress = "progress" // step: what the scraper is doing now
	TypeAssist   = "assist"   // a person is needed (captcha in a headful browser): step, details
	TypeTripwire = "tripwire" // terminal: kind, step, elapsed_ms, details
	TypeSuccess  = "success"  // terminal: api_key
	TypeError    = "error"    // terminal: code, details
)

// TripwireKind says which guard fired.
type TripwireKind string

// Tripwire kinds.
const (
	TripSelectorTimeout    TripwireKind = "selector_timeout"
	TripUnexpectedNav      TripwireKind = "unexpected_nav"
	TripHTTP5xx            TripwireKind = "http5xx"
	TripEmailTimeout       TripwireKind = "email_timeout"
	TripVerificationFailed TripwireKind = "verification_failed"
	TripCaptcha            TripwireKind = "captcha"
)

var tripwireKinds = map[TripwireKind]bool{
	TripSelectorTimeout: true, TripUnexpectedNav: true, TripHTTP5xx: true,
	TripEmailTimeout: true, TripVerificationFailed: true, TripCaptcha: true,
}

// ErrorCode is the stable code of a failed run.
type ErrorCode string

// Error codes. Unknown codes read from a scraper become CodeInternal.
const (
	CodeInProgress         ErrorCode = "provision_in_progress"
	CodeTripwire           ErrorCode = "tripwire_exhausted"
	CodeEmailBackendDown   ErrorCode = "email_backend_down"
	CodeVerifyEndpointDown ErrorCode = "verification_endpoint_down"
	CodeVerificationFailed ErrorCode = "verification_failed"
	CodeStoreFailed        ErrorCode = "store_failed"
	CodeMalformedEvent     ErrorCode = "malformed_event"
	CodeTimeout            ErrorCode = "timeout"
	CodeInternal           ErrorCode = "internal"
	CodeSelectorMissing    ErrorCode = "selector_missing"
	CodeMissingConfig      ErrorCode = "missing_config"
	CodeKeyFormat          ErrorCode = "key_format"
	CodeOTPNotFound        ErrorCode = "otp_not_found"
	CodeCaptchaUnsolved    ErrorCode = "captcha_unsolved"
	CodeEmailNotFound      ErrorCode = "email_not_found"
	CodeUnsupportedService ErrorCode = "unsupported_service"
	CodeScopeDenied        ErrorCode = "scope_denied"
	CodeBrokerFailed       ErrorCode = "broker_failed"
	CodeBrowserFailed      ErrorCode = "browser_failed"
)

var errorCodes = map[ErrorCode]bool{
	CodeInProgress: true, CodeTripwire: true, CodeEmailBackendDown: true, CodeVerifyEndpointDown: true,
	CodeVerificationFailed: true, CodeStoreFailed: true, CodeMalformedEvent: true, CodeTimeout: true,
	CodeInternal: true, CodeSelectorMissing: true, CodeMissingConfig: true, CodeKeyFormat: true,
	CodeOTPNotFound: true, CodeCaptchaUnsolved: true, CodeEmailNotFound: true, CodeUnsupportedService: true,
	CodeBrokerFailed: true, CodeBrowserFailed: true,
}

// ErrorCodes returns every error code a run may end with, sorted (the
// results `agentkeys usage --action provision` can show).
func ErrorCodes() []ErrorCode {
	out := []ErrorCode{CodeScopeDenied}
	for c := range errorCodes {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Event is one line of the scraper protocol.
type Event struct {
	Type      string       `json:"type"`
	Step      string       `json:"step,omitempty"`
	Kind      TripwireKind `json:"kind,omitempty"`
	ElapsedMS int64        `json:"elapsed_ms,omitempty"`
	APIKey    string       `json:"api_key,omitempty"`
	Code      ErrorCode    `json:"code,omitempty"`
	Details   string       `json:"details,omitempty"`
	// Diagnostics is the directory holding the screenshot and the last
	// actions of a failed run (tripwire and error events).
	Diagnostics string `json:"diagnostics,omitempty"`
}

// Terminal reports whether e ends a run.
func (e Event) Terminal() bool {
	return e.Type == TypeSuccess || e.Type == TypeError || e.Type == TypeTripwire
}

// String describes e for people; it never includes the API key.
func (e Event) String() string {
	switch e.Type {
	case TypeProgress:
		return e.Step
	case TypeAssist:
		return "needs a person at " + e.Step + ": " + e.Details
	case TypeTripwire:
		s := fmt.Sprintf("tripwire %s at %s after %d ms", e.Kind, e.Step, e.ElapsedMS)
		if e.Details != "" {
			s += ": " + e.Details
		}
		return s
	case TypeSuccess:
		return "key obtained"
	case TypeError:
		return fmt.Sprintf("%s: %s", e.Code, e.Details)
	}
	return e.Type
}

// ErrMalformed is returned by ParseEvent for a line that is not an event.
var ErrMalformed = errors.New("malformed event")

// maxLine bounds one event line.
const maxLine = 64 << 10

// ParseEvent decodes one line. Blank lines give ok=false and no error.
// Unknown types, unknown fields, bad JSON, unknown tripwire kinds or
// missing required fields are ErrMalformed; an unknown error code is
// kept as CodeInternal with the original code in the details, so a newer
// scraper cannot make an older orchestrator fail worse.
func ParseEvent(line []byte) (ev Event, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return Event{}, false, nil
	}
	if len(line) > maxLine {
		return Event{}, false, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLine)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Event{}, false, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	switch ev.Type {
	case TypeProgress, TypeAssist:
		if ev.Step == "" {
			return Event{}, false, fmt.Errorf("%w: %s without step", ErrMalformed, ev.Type)
		}
	case TypeTripwire:
		if !tripwireKinds[ev.Kind] {
			return Event{}, false, fmt.Errorf("%w: unknown tripwire kind %q", ErrMalformed, ev.Kind)
		}
	case TypeSuccess:
		if ev.APIKey == "" {
			return Event{}, false, fmt.Errorf("%w: success without api_key", ErrMalformed)
		}
	case TypeError:
		if !errorCodes[ev.Code] {
			if ev.Details == "" {
				ev.Details = string(ev.Code)
			} else {
				ev.Details = string(ev.Code) + ": " + ev.Details
			}
			ev.Code = CodeInternal
		}
	default:
		return Event{}, false, fmt.Errorf("%w: unknown type %q", ErrMalformed, ev.Type)
	}
	return ev, true, nil
}

// Emitter writes events as JSON lines; it is safe for concurrent use.
type Emitter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEmitter writes events to w (the scraper's stdout).
func NewEmitter(w io.Writer) *Emitter { return &Emitter{w: w} }

// Emit writes e as one line. encoding/json escapes newlines inside
// strings, so a line never breaks.
func (m *Emitter) Emit(e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err = m.w.Write(append(b, '\n'))
	return err
}

// Progress emits a progress event.
func (m *Emitter) Progress(step string) error { return m.Emit(Event{Type: TypeProgress, Step: step}) }

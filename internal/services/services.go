// Package services is the one table of the third-party services AgentKeys
// knows by name: where each one's API lives, how a request to it carries
// the credential, which environment variables SDKs read for it, and (for
// the services the provisioner can sign up for) its sign-up page and key
// check. The CLI's service list, the provisioner and the daemon's gateway
// all read it.
//
// Rules:
//   - APIBase is an origin (scheme://host[:port], no path); a service's
//     paths are appended to it unchanged.
//   - AGENTKEYS_<NAME>_API_URL (and _SIGNUP_URL) replace those origins.
//     Whoever sets the daemon's environment is trusted: the gateway sends
//     the credential to whatever origin the variable names.
package services

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Auth says how a request carries a service's credential.
type Auth struct {
	// In is "header" or "query".
	In string
	// Name is the header or query parameter.
	Name string
	// Prefix goes before the credential ("Bearer " for Authorization).
	Prefix string
}

// Bearer is "Authorization: Bearer <key>".
var Bearer = Auth{In: "header", Name: "Authorization", Prefix: "Bearer "}

// String is the form ParseAuth reads.
func (a Auth) String() string {
	if a == Bearer {
		return "bearer"
	}
	return a.In + ":" + a.Name
}

// ParseAuth reads "bearer", "header:NAME" (the raw key in header NAME) or
// "query:NAME" (the key in query parameter NAME).
func ParseAuth(s string) (Auth, error) {
	if s == "bearer" {
		return Bearer, nil
	}
	in, name, ok := strings.Cut(s, ":")
	if !ok || (in != "header" && in != "query") {
		return Auth{}, fmt.Errorf("auth %q: want bearer, header:NAME or query:NAME", s)
	}
	if !token(name) {
		return Auth{}, fmt.Errorf("auth %q: NAME must be 1 to 64 letters, digits, '-' or '_'", s)
	}
	if in == "header" && strings.EqualFold(name, "Host") {
		return Auth{}, fmt.Errorf("auth %q: the Host header cannot carry a credential", s)
	}
	return Auth{In: in, Name: name}, nil
}

func token(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Service is one row of the table.
type Service struct {
	Name    string
	APIBase string // origin of the API (https://api.openai.com)
	Auth    Auth
	// BaseURLEnv is the variable SDKs read the API's base URL from, and
	// BaseURLPath what follows the origin in it ("/v1" for OpenAI).
	BaseURLEnv  string
	BaseURLPath string
	// KeyEnv is the variable SDKs read the key from; with a gateway it
	// holds a placeholder so SDKs that insist on a key start.
	KeyEnv string

	// Provisioner fields; SignupURL "" means the provisioner cannot sign
	// up for the service.
	SignupURL string
	// VerifyPath is requested with the credential: 2xx means the key
	// works, 401/403 that it does not.
	VerifyPath string
	Budget     time.Duration // wall clock for one scraper run
}

// VerifyURL is where a key of this service is checked.
func (s Service) VerifyURL() string { return strings.TrimRight(s.APIBase, "/") + s.VerifyPath }

// Provisionable reports whether the provisioner can sign up for s.
func (s Service) Provisionable() bool { return s.SignupURL != "" }

// table is the built-in list. OpenRouter's GET /api/v1/key answers 401
// for a bad key (its /models is public and cannot tell); OpenAI's
// /v1/models requires authentication.
var table = []Service{
	{
		Name: "anthropic", APIBase: "https://api.anthropic.com", Auth: Auth{In: "header", Name: "x-api-key"},
		BaseURLEnv: "ANTHROPIC_BASE_URL", KeyEnv: "ANTHROPIC_API_KEY",
	},
	{
		Name: "openai", APIBase: "https://api.openai.com", Auth: Bearer,
		BaseURLEnv: "OPENAI_BASE_URL", BaseURLPath: "/v1", KeyEnv: "OPENAI_API_KEY",
		SignupURL: "https://platform.openai.com/signup", VerifyPath: "/v1/models", Budget: 7 * time.Minute,
	},
	{
		Name: "openrouter", APIBase: "https://openrouter.ai", Auth: Bearer,
		BaseURLEnv: "OPENROUTER_BASE_URL", BaseURLPath: "/api/v1", KeyEnv: "OPENROUTER_API_KEY",
		SignupURL: "https://openrouter.ai/sign-up", VerifyPath: "/api/v1/key", Budget: 7 * time.Minute,
	},
}

// All returns the built-in services, sorted by name.
func All() []Service { return slices.Clone(table) }

// Names returns the built-in services' names, sorted.
func Names() []string {
	out := make([]string, len(table))
	for i, s := range table {
		out[i] = s.Name
	}
	return out
}

// Provisionable returns the names of the services the provisioner can
// sign up for, sorted.
func Provisionable() []string {
	var out []string
	for _, s := range table {
		if s.Provisionable() {
			out = append(out, s.Name)
		}
	}
	return out
}

// EnvPrefix is the prefix of a service's override variables:
// AGENTKEYS_<NAME> with '-' as '_'.
func EnvPrefix(name string) string { return "AGENTKEYS_" + envStem(name) }

// EnvNameFor is the variable a service's credential goes into when a run
// names none: <NAME>_API_KEY, upper case, '-' as '_' (agentkeys run and
// export, and the daemon's run_with_credential and socket runs).
func EnvNameFor(service string) string { return envStem(service) + "_API_KEY" }

// envStem is a service name as part of a variable name.
func envStem(name string) string { return strings.ReplaceAll(strings.ToUpper(name), "-", "_") }

// Lookup returns the built-in service called name with its origins
// replaced by AGENTKEYS_<NAME>_API_URL and _SIGNUP_URL when getenv (nil:
// os.Getenv) has them.
func Lookup(name string, getenv func(string) string) (Service, bool) {
	i := slices.IndexFunc(table, func(s Service) bool { return s.Name == name })
	if i < 0 {
		return Service{}, false
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	s := table[i]
	if v := getenv(EnvPrefix(name) + "_SIGNUP_URL"); v != "" {
		s.SignupURL = v
	}
	if v := getenv(EnvPrefix(name) + "_API_URL"); v != "" {
		s.APIBase = v
	}
	return s, true
}

// Overridden reports whether getenv replaces name's API origin.
func Overridden(name string, getenv func(string) string) bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	return getenv(EnvPrefix(name)+"_API_URL") != ""
}

// ParseSpec reads an extra service declared as NAME=ORIGIN,AUTH (AUTH as
// ParseAuth reads it), e.g. "example=https://api.example.com,header:X-Api-Key".
func ParseSpec(spec string) (Service, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok {
		return Service{}, fmt.Errorf("service %q: want NAME=ORIGIN,AUTH", spec)
	}
	origin, auth, ok := strings.Cut(rest, ",")
	if !ok {
		return Service{}, fmt.Errorf("service %q: want NAME=ORIGIN,AUTH", spec)
	}
	a, err := ParseAuth(auth)
	if err != nil {
		return Service{}, fmt.Errorf("service %q: %w", name, err)
	}
	s := Service{Name: name, APIBase: origin, Auth: a}
	if err := s.Check(); err != nil {
		return Service{}, err
	}
	return s, nil
}

// Check validates the name (agentkeys.ValidateService) and that APIBase is an http or https origin without path, query
// or user info.
func (s Service) Check() error {
	if err := agentkeys.ValidateService(s.Name); err != nil {
		return err
	}
	_, err := Origin(s.APIBase)
	if err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	return nil
}

// Origin parses an API origin: http or https, a host, no user info, no
// query or fragment, and no path but "/".
func Origin(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("API URL is not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("API URL %q: want http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("API URL %q: no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("API URL %q: user info is not allowed", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("API URL %q: no query or fragment allowed", raw)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("API URL %q: give the origin only (no path)", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

package provision

import (
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Service describes one provisionable service: where it signs up, how a
// key is verified and how long a run may take. The browser steps
// themselves live in internal/provision/scraper, one file per service.
type Service struct {
	Name      string
	SignupURL string // sign-up page
	APIBase   string // base URL of the API that verifies a key
	// VerifyPath is requested with "Authorization: Bearer <key>": 2xx means
	// the key works, 401/403 that it does not.
	VerifyPath string
	Budget     time.Duration // wall clock for one scraper run
}

// VerifyURL is where a key of this service is checked.
func (s Service) VerifyURL() string { return strings.TrimRight(s.APIBase, "/") + s.VerifyPath }

// builtin lists the services the scrapers know. OpenRouter's
// GET /api/v1/key answers 401 for a bad key (its /models is public and
// cannot tell); OpenAI's /v1/models requires authentication.
var builtin = map[string]Service{
	"openrouter": {
		Name: "openrouter", SignupURL: "https://openrouter.ai/sign-up", APIBase: "https://openrouter.ai",
		VerifyPath: "/api/v1/key", Budget: 7 * time.Minute,
	},
	"openai": {
		Name: "openai", SignupURL: "https://platform.openai.com/signup", APIBase: "https://api.openai.com",
		VerifyPath: "/v1/models", Budget: 7 * time.Minute,
	},
}

// Services returns the names of the services the provisioner supports.
func Services() []string { return slices.Sorted(maps.Keys(builtin)) }

// LookupService returns the service called name with its URLs overridden
// from the environment: AGENTKEYS_<NAME>_SIGNUP_URL and
// AGENTKEYS_<NAME>_API_URL (a test fixture, a staging site, a proxy).
func LookupService(name string, getenv func(string) string) (Service, bool) {
	s, ok := builtin[name]
	if !ok {
		return Service{}, false
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	up := "AGENTKEYS_" + strings.ToUpper(name)
	if v := getenv(up + "_SIGNUP_URL"); v != "" {
		s.SignupURL = v
	}
	if v := getenv(up + "_API_URL"); v != "" {
		s.APIBase = v
	}
	return s, true
}

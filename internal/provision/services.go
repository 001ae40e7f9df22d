package provision

import (
	"github.com/agentkeys/agentkeys/internal/services"
)

// Service describes one provisionable service: where it signs up, how a
// key is verified and how long a run may take (a row of the shared
// service table). The browser steps themselves live in
// internal/provision/scraper, one file per service.
type Service = services.Service

// Services returns the names of the services the provisioner supports.
func Services() []string { return services.Provisionable() }

// LookupService returns the provisionable service called name with its
// URLs overridden from the environment: AGENTKEYS_<NAME>_SIGNUP_URL and
// AGENTKEYS_<NAME>_API_URL (a test fixture, a staging site, a proxy).
func LookupService(name string, getenv func(string) string) (Service, bool) {
	s, ok := services.Lookup(name, getenv)
	if !ok || !s.Provisionable() {
		return Service{}, false
	}
	return s, true
}

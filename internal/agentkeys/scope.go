package agentkeys

import (
	"errors"
	"fmt"
	"slices"
)

// Service names a third-party service whose credential AgentKeys holds, such
// as "openrouter" or "aws-prod": 1 to 64 characters of lower-case letters,
// digits, '-' and '_', starting with a letter or digit.
type Service = string

// MaxServicesPerScope bounds the size of a scope.
const MaxServicesPerScope = 256

// ValidateService reports whether s is a well-formed service name.
func ValidateService(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return errors.New("service name must be 1 to 64 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || (i > 0 && (c == '-' || c == '_'))
		if !ok {
			return fmt.Errorf("service name %q: use lower-case letters, digits, '-' and '_', starting with a letter or digit", truncate(s, 64))
		}
	}
	return nil
}

// Scope limits what a session may do with credentials: which services it may
// read, list and store, and whether it may write at all. A nil *Scope means
// unrestricted (a master); a Scope with no services allows nothing.
type Scope struct {
	Services []string `json:"services"`
	ReadOnly bool     `json:"read_only"`
}

// Normalize validates the scope and returns a copy with services sorted and
// de-duplicated. A nil scope stays nil.
func (s *Scope) Normalize() (*Scope, error) {
	if s == nil {
		return nil, nil
	}
	if len(s.Services) > MaxServicesPerScope {
		return nil, fmt.Errorf("scope lists more than %d services", MaxServicesPerScope)
	}
	out := &Scope{Services: make([]string, 0, len(s.Services)), ReadOnly: s.ReadOnly}
	for _, svc := range s.Services {
		if err := ValidateService(svc); err != nil {
			return nil, err
		}
		out.Services = append(out.Services, svc)
	}
	slices.Sort(out.Services)
	out.Services = slices.Compact(out.Services)
	return out, nil
}

// Allows reports whether the scope permits access to service.
func (s *Scope) Allows(service string) bool {
	if s == nil {
		return true
	}
	_, found := slices.BinarySearch(s.Services, service)
	return found
}

// CanWrite reports whether the scope permits storing or deleting credentials.
func (s *Scope) CanWrite() bool { return s == nil || !s.ReadOnly }

// Within reports whether s grants nothing that parent does not: every service
// of s is in parent, and s is read-only if parent is.
func (s *Scope) Within(parent *Scope) bool {
	if parent == nil {
		return true
	}
	if s == nil {
		return false
	}
	if parent.ReadOnly && !s.ReadOnly {
		return false
	}
	for _, svc := range s.Services {
		if !parent.Allows(svc) {
			return false
		}
	}
	return true
}

// Intersect returns the scope that grants only what both s and o grant.
func (s *Scope) Intersect(o *Scope) *Scope {
	switch {
	case s == nil && o == nil:
		return nil
	case s == nil:
		return o.clone()
	case o == nil:
		return s.clone()
	}
	out := &Scope{Services: []string{}, ReadOnly: s.ReadOnly || o.ReadOnly}
	for _, svc := range s.Services {
		if o.Allows(svc) {
			out.Services = append(out.Services, svc)
		}
	}
	return out
}

// ErrUnrestricted is returned when an unrestricted (nil) scope is edited:
// it has no list of services to add to or remove from.
var ErrUnrestricted = errors.New("the scope is unrestricted (a master): it cannot be edited")

// Edit returns a normalized copy of the scope with the services of add
// granted and those of remove withdrawn; ReadOnly is kept. A service both
// added and removed is an error, as is editing a nil (unrestricted) scope.
func (s *Scope) Edit(add, remove []string) (*Scope, error) {
	if s == nil {
		return nil, ErrUnrestricted
	}
	for _, svc := range add {
		if slices.Contains(remove, svc) {
			return nil, fmt.Errorf("service %s is both added and removed", svc)
		}
	}
	next := &Scope{Services: slices.Clone(s.Services), ReadOnly: s.ReadOnly}
	next.Services = append(next.Services, add...)
	next.Services = slices.DeleteFunc(next.Services, func(svc string) bool { return slices.Contains(remove, svc) })
	return next.Normalize()
}

// Filter returns the services of list that the scope allows.
func (s *Scope) Filter(list []string) []string {
	out := make([]string, 0, len(list))
	for _, svc := range list {
		if s.Allows(svc) {
			out = append(out, svc)
		}
	}
	return out
}

func (s *Scope) clone() *Scope {
	if s == nil {
		return nil
	}
	return &Scope{Services: slices.Clone(s.Services), ReadOnly: s.ReadOnly}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package agentkeys

import (
	"fmt"
	"strings"
	"testing"
)

// TestNameRulesAtTheirEdges: every length limit accepts its maximum and
// refuses one more, and the first and last characters of each allowed
// range are allowed.
func TestNameRulesAtTheirEdges(t *testing.T) {
	for _, s := range []string{"az09", "za90", "a-z_0", strings.Repeat("a", 64)} {
		if err := ValidateService(s); err != nil {
			t.Errorf("service %q refused: %v", s, err)
		}
	}
	if err := ValidateService(strings.Repeat("a", 65)); err == nil {
		t.Error("65-character service accepted")
	}
	for _, s := range []string{"az09", "za90", "9.a_z-0", strings.Repeat("z", MaxAliasLen)} {
		if err := ValidAlias(s); err != nil {
			t.Errorf("alias %q refused: %v", s, err)
		}
	}
	if err := ValidAlias(strings.Repeat("a", MaxAliasLen+1)); err == nil {
		t.Error("alias over MaxAliasLen accepted")
	}

	email := strings.Repeat("a", MaxIdentityLen-len("@example.com")) + "@example.com"
	if id, err := ParseIdentityAs(KindEmail, email); err != nil || id.Value != email {
		t.Errorf("email of exactly MaxIdentityLen bytes: %v", err)
	}
	if _, err := ParseIdentityAs(KindEmail, "a"+email); err == nil {
		t.Error("email over MaxIdentityLen accepted")
	}
	for _, bad := range []string{"a@@example.com", "a@b@example.com", "@example.com", "a@"} {
		if _, err := ParseIdentityAs(KindEmail, bad); err == nil {
			t.Errorf("email %q accepted", bad)
		}
	}

	services := make([]string, MaxServicesPerScope)
	for i := range services {
		services[i] = fmt.Sprintf("s%d", i)
	}
	if _, err := (&Scope{Services: services}).Normalize(); err != nil {
		t.Errorf("scope of exactly MaxServicesPerScope services refused: %v", err)
	}
	if _, err := (&Scope{Services: append(services, "one-more")}).Normalize(); err == nil {
		t.Error("scope over MaxServicesPerScope accepted")
	}

	// A refused name is echoed whole up to the cut, and cut after it.
	bad64 := "A" + strings.Repeat("a", 63)
	if err := ValidateService(bad64); err == nil || !strings.Contains(err.Error(), `"`+bad64+`"`) {
		t.Errorf("64-character bad service echoed as: %v", err)
	}
	kind := strings.Repeat("k", 32)
	if _, err := ParseIdentityAs(IdentityKind(kind), "x"); err == nil || !strings.Contains(err.Error(), `"`+kind+`"`) || strings.Contains(err.Error(), "…") {
		t.Errorf("32-byte unknown kind echoed as: %v", err)
	}
	if _, err := ParseIdentityAs(IdentityKind(kind+"k"), "x"); err == nil || !strings.Contains(err.Error(), `"`+kind+`…"`) {
		t.Errorf("33-byte unknown kind echoed as: %v", err)
	}
}

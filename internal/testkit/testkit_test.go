package testkit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInTheBinaries: no test-support package of this module (testkit
// and the *test packages beside the packages they serve) is linked into a
// command.
func TestNotInTheBinaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", Module+"/cmd/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list named no packages")
	}
	for _, p := range deps {
		if strings.HasPrefix(p, Module+"/") && (strings.HasSuffix(p, "test") || strings.HasSuffix(p, "/testkit")) {
			t.Errorf("%s is linked into a binary", p)
		}
	}
}

package secretref

import (
	"slices"
	"testing"
)

// TestReplaceEnv: what set assigns replaces the inherited value (once, at
// the end, in set's order), what drop reports is gone, the rest is kept in
// its order.
func TestReplaceEnv(t *testing.T) {
	env := []string{"PATH=/bin", "OPENAI_API_KEY=inherited", "AGENTKEYS_TOKEN=t", "HOME=/h", "EMPTY="}
	got := ReplaceEnv(env, func(name string) bool { return name == "AGENTKEYS_TOKEN" }, []string{"OPENAI_API_KEY=new", "EMPTY=x"})
	want := []string{"PATH=/bin", "HOME=/h", "OPENAI_API_KEY=new", "EMPTY=x"}
	if !slices.Equal(got, want) {
		t.Fatalf("ReplaceEnv = %q, want %q", got, want)
	}
	if got := ReplaceEnv(env, nil, nil); !slices.Equal(got, env) {
		t.Fatalf("ReplaceEnv with nothing to do = %q, want %q", got, env)
	}
}

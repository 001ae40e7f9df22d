package keychain

import (
	"strings"
	"testing"
)

// TestProfileNames: a profile name is 1 to 64 of letters, digits, '.',
// '_' and '-', starting with a letter or digit; a 64-character profile
// stores and loads a session, a 65-character one is refused.
func TestProfileNames(t *testing.T) {
	longest := "azAZ09._-" + strings.Repeat("p", 64-9)
	st := fileStore(t)
	want := testSession()
	if _, err := st.Save(longest, want); err != nil {
		t.Fatalf("save to a 64-character profile: %v", err)
	}
	got, err := st.Load(longest)
	if err != nil || got.Token != want.Token {
		t.Fatalf("load from a 64-character profile: %v", err)
	}
	if _, err := st.Save(longest+"p", want); err == nil || !strings.Contains(err.Error(), "1 to 64") {
		t.Fatalf("65-character profile: err = %v", err)
	}
	for _, ok := range []string{"a", "z", "A", "Z", "0", "9", "a.b", "a_b", "a-b", "work-2"} {
		if err := ValidateProfile(ok); err != nil {
			t.Errorf("ValidateProfile(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "_a", "-a", "`", "{", "@", "[", "/", ":", "a/b", "a b", "a`", "a{", "a@", "a[", "a:", "a/"} {
		if err := ValidateProfile(bad); err == nil {
			t.Errorf("ValidateProfile(%q) accepted", bad)
		}
	}
}

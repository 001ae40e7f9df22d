package audit

import "testing"

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer tha"},
		{"nul\x00byte", 20, "nul\uFFFDbyte"},
		{"bad\xffutf8", 20, "bad\uFFFDutf8"},
		{"ééééé", 5, "éé"}, // never cuts a rune in half
	} {
		if got := clip(c.in, c.n); got != c.want {
			t.Errorf("clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

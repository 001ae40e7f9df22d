package cli

import "testing"

func TestDidYouMeanPicksNearName(t *testing.T) {
	cands := []string{"openrouter", "openai", "aws"}
	for in, want := range map[string]string{
		"openruter": "openrouter", "opneai": "openai", "aws": "", "asw": "aws",
		"stripe": "", "x": "", "openrouter": "",
	} {
		if got := didYouMean(in, cands); got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", in, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d", d)
	}
}

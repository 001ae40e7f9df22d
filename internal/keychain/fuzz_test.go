package keychain

import (
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// FuzzParseSession: the session file is read from disk (and, in the
// daemon, from a path an operator gives); it must never panic, must
// re-marshal whatever it accepts to something it accepts again, and must
// never quote its input in an error.
func FuzzParseSession(f *testing.F) {
	tok := agentkeys.NewToken().Reveal()
	w := string(agentkeys.NewWallet())
	f.Add([]byte(`{"session":"` + tok + `","wallet":"` + w + `","backend":"http://127.0.0.1:8090"}`))
	f.Add([]byte(`{"session":"` + tok + `","wallet":"` + w + `","backend":"https://b.example/","expires_at":1}`))
	f.Add([]byte(`{"session":"` + tok + `","wallet":"` + w + `","backend":"http://127.0.0.1:8090","broker":"http://127.0.0.1:8091/"}`))
	f.Add([]byte(`{"session":"` + tok + `","wallet":"` + w + `","backend":"http://127.0.0.1:8090","broker":"x"}`))
	f.Add([]byte(`{"session":null}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"session":"` + tok + `"} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSession(data)
		if err != nil {
			if len(data) >= 16 && strings.Contains(err.Error(), string(data)) {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted session does not marshal: %v", err)
		}
		s2, err := ParseSession(out)
		if err != nil || s2 != s {
			t.Fatalf("round trip changed the session: %+v vs %+v (%v)", s, s2, err)
		}
	})
}

package confine

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

func TestParseUser(t *testing.T) {
	if _, err := user.Lookup("nobody"); err == nil && os.Geteuid() != 65534 {
		c, err := ParseUser("nobody")
		if err != nil || c.Uid != 65534 {
			t.Fatalf("nobody: %+v %v", c, err)
		}
	}
	for in, want := range map[string]Cred{"65534:65534": {65534, 65534}, "4242": {4242, 4242}, "4242:77": {4242, 77}} {
		if os.Geteuid() == int(want.Uid) {
			continue
		}
		if c, err := ParseUser(in); err != nil || c != want {
			t.Errorf("%s: %+v %v, want %+v", in, c, err, want)
		}
	}
	for in, msg := range map[string]string{"": "want USER", ":1": "want USER", "1:": "want USER", "root": "root", "0": "root", "5:0": "root",
		"no-such-user-agentkeys": "no user", "4242:no-such-group-agentkeys": "no group"} {
		if _, err := ParseUser(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want an error with %q", in, err, msg)
		}
	}
	if os.Geteuid() != 0 {
		if _, err := ParseUser(strconv.Itoa(os.Geteuid())); err == nil || !strings.Contains(err.Error(), "own uid") {
			t.Errorf("own uid accepted: %v", err)
		}
	}
}

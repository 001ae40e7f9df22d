package cli

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/provision/fixture"
)

// mailBucket is a minimal S3 (path-style ListObjectsV2 and GetObject)
// standing in for the bucket an SES receipt rule writes to. It serves
// only requests signed with an access key accepted by allow, and records
// the keys it saw.
type mailBucket struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string][]byte
	seen    map[string]int
	allow   func(akid string) bool
}

func newMailBucket(t *testing.T, allow func(string) bool) *mailBucket {
	b := &mailBucket{objects: map[string][]byte{}, seen: map[string]int{}, allow: allow}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *mailBucket) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	_, cred, _ := strings.Cut(auth, "Credential=")
	akid, _, _ := strings.Cut(cred, "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[akid]++
	if akid == "" || !b.allow(akid) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<Error><Code>InvalidAccessKeyId</Code><Message>unknown key</Message></Error>`)
		return
	}
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if key == "" {
		prefix := r.URL.Query().Get("prefix")
		type entry struct {
			Key          string
			LastModified string
			Size         int
		}
		var res struct {
			XMLName  xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
			Name     string
			KeyCount int
			Contents []entry
		}
		var keys []string
		for k := range b.objects {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			res.Contents = append(res.Contents, entry{Key: k, LastModified: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), Size: len(b.objects[k])})
		}
		res.KeyCount = len(res.Contents)
		w.Header().Set("Content-Type", "application/xml")
		xml.NewEncoder(w).Encode(res)
		return
	}
	body, ok := b.objects[key]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>`)
		return
	}
	w.Write(body)
}

func (b *mailBucket) put(key string, body []byte) {
	b.mu.Lock()
	b.objects[key] = body
	b.mu.Unlock()
}

// TestProvisionWithBrokerAWSAndSES runs provision against `agentkeys dev`
// (with a fake STS) using --broker-url: the scraper reads the sign-up
// mail from an SES→S3 bucket with the broker-minted AWS credentials, the
// only credentials it has.
func TestProvisionWithBrokerAWSAndSES(t *testing.T) {
	needChromium(t)
	w, dev, fake := newDevWorld(t)
	_, master := w.initMaster()
	w.createAgent("bot", "--services", "openrouter")

	minted := func(akid string) bool {
		for _, c := range fake.Issued() {
			if c.AccessKeyID == akid {
				return true
			}
		}
		return false
	}
	bucket := newMailBucket(t, minted)
	addr := "signup-" + randHex(4) + "@mail.example.test"
	n := 0
	site := fixture.New(fixture.Options{Deliver: func(_ context.Context, to, from, subject, text, html string) error {
		n++
		raw := "Date: " + time.Now().Format(time.RFC1123Z) + "\r\n" + mimeMail(from, to, subject, text, html)
		bucket.put(fmt.Sprintf("%s/inbound/%03d", master, n), []byte(raw))
		return nil
	}})
	t.Cleanup(site.Close)

	env := w.env(
		"XDG_STATE_HOME="+filepath.Join(w.home, ".state"),
		"AGENTKEYS_OPENROUTER_SIGNUP_URL="+site.SignupURL("openrouter"),
		"AGENTKEYS_OPENROUTER_API_URL="+site.URL,
		"AGENTKEYS_BROKER_URL="+dev.Broker.URL(),
		"AWS_REGION=us-east-1",
	)
	args := []string{"provision", "openrouter", "--agent", "bot", "--email", addr, "--email-backend", "ses",
		"--ses-bucket", "mail", "--ses-prefix", master + "/", "--s3-endpoint", bucket.URL, "--email-timeout", "30s"}
	r := w.exec(nil, env, args...)
	expectCode(t, r, 0, args...)
	if !strings.Contains(r.stderr, "minting AWS credentials through the broker") {
		t.Fatalf("no broker step: %s", r)
	}
	if len(fake.Issued()) != 1 {
		t.Fatalf("STS issued %d credentials", len(fake.Issued()))
	}
	bucket.mu.Lock()
	hits := bucket.seen[fake.Issued()[0].AccessKeyID]
	bucket.mu.Unlock()
	if hits == 0 {
		t.Fatal("the scraper never used the broker-minted credentials")
	}
	keys := site.IssuedKeys()
	if len(keys) != 1 {
		t.Fatalf("site issued %d keys", len(keys))
	}
	run := w.exec(nil, append(env, "WANT="+keys[0]), "run", "bot", "--", "sh", "-c", `test "$OPENROUTER_API_KEY" = "$WANT"`)
	expectCode(t, run, 0, "run")
	for _, c := range fake.Issued() {
		if strings.Contains(r.stdout+r.stderr, c.SecretAccessKey) || strings.Contains(r.stdout+r.stderr, c.SessionToken) {
			t.Fatal("AWS secrets printed")
		}
	}
}

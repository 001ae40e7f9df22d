package email

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

const (
	testBucket    = "agentkeys-mail"
	testAccessKey = "AKIDTESTEXAMPLE"
	testSecretKey = "SECRETsecretSECRETsecret"
)

type s3Object struct {
	body     []byte
	modified time.Time
}

// fakeS3 is an in-memory S3 serving path-style ListObjectsV2 and
// GetObject, 1000 keys a page.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string]s3Object
	deny    bool
	gets    map[string]int
	lists   chan struct{}
}

func newFakeS3(t *testing.T) (*fakeS3, *httptest.Server) {
	fs := &fakeS3{objects: map[string]s3Object{}, gets: map[string]int{}, lists: make(chan struct{}, 10000)}
	srv := httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(srv.Close)
	return fs, srv
}

func (fs *fakeS3) put(key string, body []byte, modified time.Time) {
	fs.mu.Lock()
	fs.objects[key] = s3Object{body: body, modified: modified}
	fs.mu.Unlock()
}

func s3Err(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>r1</RequestId></Error>`, code, msg)
}

type listResult struct {
	XMLName               xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name                  string
	Prefix                string
	KeyCount              int
	MaxKeys               int
	IsTruncated           bool
	NextContinuationToken string `xml:",omitempty"`
	Contents              []listEntry
}

type listEntry struct {
	Key          string
	LastModified string
	ETag         string
	Size         int
	StorageClass string
}

func (fs *fakeS3) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Authorization"), "Credential="+testAccessKey+"/") {
		s3Err(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.deny {
		s3Err(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != testBucket {
		s3Err(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	if r.Method != http.MethodGet {
		s3Err(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "only GET")
		return
	}
	if key == "" {
		q := r.URL.Query()
		if q.Get("list-type") != "2" {
			s3Err(w, http.StatusBadRequest, "InvalidArgument", "list-type=2 only")
			return
		}
		prefix, after := q.Get("prefix"), q.Get("continuation-token")
		maxKeys := 1000
		if v, err := strconv.Atoi(q.Get("max-keys")); err == nil && v > 0 && v < maxKeys {
			maxKeys = v
		}
		var keys []string
		for k := range fs.objects {
			if strings.HasPrefix(k, prefix) && k > after {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		res := listResult{Name: bucket, Prefix: prefix, MaxKeys: maxKeys}
		if len(keys) > maxKeys {
			keys = keys[:maxKeys]
			res.IsTruncated, res.NextContinuationToken = true, keys[len(keys)-1]
		}
		for _, k := range keys {
			o := fs.objects[k]
			res.Contents = append(res.Contents, listEntry{Key: k, LastModified: o.modified.UTC().Format("2006-01-02T15:04:05.000Z"), ETag: `"e"`, Size: len(o.body), StorageClass: "STANDARD"})
		}
		res.KeyCount = len(res.Contents)
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(xml.Header))
		_ = xml.NewEncoder(w).Encode(res)
		select {
		case fs.lists <- struct{}{}:
		default:
		}
		return
	}
	o, ok := fs.objects[key]
	if !ok {
		s3Err(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	fs.gets[key]++
	w.Header().Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", strconv.Itoa(len(o.body)))
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(o.body)
}

// fetchSince fetches the mail matching q received since since, allowing
// 10 s, and fails t on any error.
func fetchSince(t *testing.T, f Fetcher, q Query, since time.Time) Message {
	t.Helper()
	q.Since = since
	m, err := fetchWithin(f, q, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fetchWithin is f.Fetch(q) with a budget.
func fetchWithin(f Fetcher, q Query, budget time.Duration) (Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	return f.Fetch(ctx, q)
}

func sesFetcherFor(srv *httptest.Server, prefix string) *sesFetcher {
	awsCfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		HTTPClient:  srv.Client(),
	}
	return newSES(Config{Backend: BackendSES, SESBucket: testBucket, SESPrefix: prefix, S3Endpoint: srv.URL, S3PathStyle: true, PollInterval: 5 * time.Millisecond}, awsCfg)
}

const sesTo = "bot-1700000000@bots.example.org"

// openRouterMail is the regression fixture with a fresh Date header.
func openRouterMail(t *testing.T, date time.Time, mutate ...func(string) string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "openrouter-signup-link.eml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(raw), "Date: Tue, 05 Nov 2024 10:00:00 +0000", "Date: "+date.Format(time.RFC1123Z), 1)
	for _, f := range mutate {
		s = f(s)
	}
	return []byte(s)
}

var sesQuery = Query{
	To:      sesTo,
	From:    regexp.MustCompile(`notifications@openrouter\.ai`),
	Subject: regexp.MustCompile(`(?i)^(your sign.?(up|in) link|verify your email.*|confirm your email|your magic link)$`),
}

func TestSESExtractsLinkArrivingLater(t *testing.T) {
	fs, srv := newFakeS3(t)
	now := time.Now()
	fs.put("inbound/aaa-noise", []byte(rawMail("AWS <no-reply-aws@amazon.com>", sesTo, "Amazon SES Setup Notification", now, "hello")), now)
	f := sesFetcherFor(srv, "inbound/")
	go func() {
		<-fs.lists
		fs.put("inbound/mmm-signup", openRouterMail(t, time.Now()), time.Now())
	}()
	m := fetchSince(t, f, sesQuery, now)
	a := Analyze(m, ExpectLink)
	if a.Kind != KindLink || !strings.HasPrefix(a.URL, "https://clerk.openrouter.ai/v1/verify?") || !strings.Contains(a.URL, "&__clerk_ticket=eyJ") {
		t.Fatalf("%+v", a)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.gets["inbound/aaa-noise"] != 1 {
		t.Fatalf("the noise object was fetched %d times; seen keys must not be re-read", fs.gets["inbound/aaa-noise"])
	}
}

func TestSESSevenSubjectsMatchThreeDoNot(t *testing.T) {
	for _, s := range []string{"Your sign up link", "Your sign-up link", "Your sign in link", "Verify your email for OpenRouter", "Verify your email address", "Confirm your email", "Your magic link"} {
		if !sesQuery.Subject.MatchString(s) {
			t.Errorf("%q should match", s)
		}
	}
	for _, s := range []string{"Weekly credit summary from OpenRouter", "Your account usage report", "New model available on OpenRouter"} {
		if sesQuery.Subject.MatchString(s) {
			t.Errorf("%q should not match", s)
		}
	}
}

func TestSESTimeouts(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		body   []byte
		mod    time.Time
		reason string
	}{
		{"wrong from", openRouterMail(t, now, func(s string) string {
			return strings.Replace(s, "From: OpenRouter <notifications@openrouter.ai>", "From: OpenRouter <notifications@openrouter.evil>", 1)
		}), now, "from_rejected=1"},
		{"wrong subject", openRouterMail(t, now, func(s string) string {
			return strings.Replace(s, "Subject: Your sign up link", "Subject: Weekly credit summary from OpenRouter", 1)
		}), now, "subject_rejected=1"},
		{"wrong recipient", openRouterMail(t, now, func(s string) string {
			s = strings.Replace(s, "To: "+sesTo, "To: bot-9999@bots.example.org", 1)
			return strings.Replace(s, "for "+sesTo, "for bot-9999@bots.example.org", 1)
		}), now, "other_recipient=1"},
		{"stale object", openRouterMail(t, now), now.Add(-time.Hour), "stale=1"},
		{"stale date header", openRouterMail(t, now.Add(-time.Hour)), now, "stale=1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, srv := newFakeS3(t)
			fs.put("inbound/x", c.body, c.mod)
			f := sesFetcherFor(srv, "inbound/")
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			q := sesQuery
			q.Since = now
			_, err := f.Fetch(ctx, q)
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("want ErrTimeout with %s, got %v", c.reason, err)
			}
		})
	}
	// Empty bucket.
	_, srv := newFakeS3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	q := sesQuery
	q.Since = now
	if _, err := sesFetcherFor(srv, "inbound/").Fetch(ctx, q); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "no new mail") {
		t.Fatalf("got %v", err)
	}
}

// Listing is lexicographic and capped at 1000 keys a page: the newest
// object may be on a later page, and fresh beats stale.
func TestSESPaginationFindsNewest(t *testing.T) {
	fs, srv := newFakeS3(t)
	now := time.Now()
	old := now.Add(-time.Hour)
	for i := range 1500 {
		fs.put(fmt.Sprintf("inbound/%05d", i), openRouterMail(t, old), old)
	}
	fs.put("inbound/00000-fresh-older", openRouterMail(t, now.Add(time.Second), func(s string) string {
		return strings.Replace(s, "__clerk_ticket=3DeyJ", "__clerk_ticket=3DOLDERxyz", 1)
	}), now.Add(time.Second))
	fs.put("inbound/zzzzz-newest", openRouterMail(t, now.Add(2*time.Second)), now.Add(2*time.Second))
	f := sesFetcherFor(srv, "inbound/")
	m := fetchSince(t, f, sesQuery, now)
	if a := Analyze(m, ExpectLink); !strings.Contains(a.URL, "__clerk_ticket=eyJ") {
		t.Fatalf("not the newest: %+v", a)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.gets) != 1 {
		t.Fatalf("fetched %d objects; stale ones must be skipped by LastModified", len(fs.gets))
	}
}

func TestSESBackendErrors(t *testing.T) {
	fs, srv := newFakeS3(t)
	fs.deny = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sesFetcherFor(srv, "inbound/").Fetch(ctx, Query{To: sesTo})
	if !errors.Is(err, ErrBackendDown) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("got %v", err)
	}
	fs.mu.Lock()
	fs.deny = false
	fs.mu.Unlock()
	f := sesFetcherFor(srv, "")
	f.bucket = "no-such-bucket"
	if _, err := f.Fetch(ctx, Query{To: sesTo}); !errors.Is(err, ErrBackendDown) || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), testSecretKey) {
		t.Fatal("secret in error")
	}
}

// Open with the SDK default chain (env credentials) and a custom endpoint.
func TestSESOpenDefaultChain(t *testing.T) {
	fs, srv := newFakeS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", testAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CA_BUNDLE", "")
	now := time.Now()
	fs.put("wallet1/inbox/m1.eml", openRouterMail(t, now), now)
	fs.put("wallet2/inbox/m2.eml", openRouterMail(t, now, func(s string) string {
		return strings.Replace(s, "__clerk_ticket=3DeyJ", "__clerk_ticket=3DOTHERWALLET", 1)
	}), now.Add(time.Second))
	f, err := Open(Config{Backend: "ses", SESBucket: testBucket, SESPrefix: "wallet1/", S3Endpoint: srv.URL, S3PathStyle: true, PollInterval: 5 * time.Millisecond}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	m := fetchSince(t, f, sesQuery, now)
	if a := Analyze(m, ExpectLink); !strings.Contains(a.URL, "__clerk_ticket=eyJ") {
		t.Fatalf("%+v", a)
	}
}

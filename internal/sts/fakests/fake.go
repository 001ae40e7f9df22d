// Package fakests is an in-process fake of AWS STS: it parses the
// Query-protocol form body of AssumeRole and GetCallerIdentity, checks that
// the request is SigV4-signed and well-formed, records what it received, and
// answers with real STS XML (success or ErrorResponse). Tests use it through
// sts/ststest; `agentkeys dev --fake-sts` serves it so AWS credentials can
// be minted offline (they work nowhere else).
package fakests

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AssumeCall is one AssumeRole request as STS received it.
type AssumeCall struct {
	RoleArn           string
	RoleSessionName   string
	DurationSeconds   int
	Tags              map[string]string
	TransitiveTagKeys []string
	AccessKeyID       string // of the SigV4 credential scope
}

// Issued are the credentials the fake handed out.
type Issued struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
}

// Fake is a fake STS endpoint. Configure its failure modes with the
// exported fields (under Lock/Unlock when the server is already in use).
type Fake struct {
	*httptest.Server

	stop     chan struct{}
	stopOnce sync.Once

	mu sync.Mutex
	// FailAssume makes AssumeRole answer an AccessDenied ErrorResponse with
	// this message.
	FailAssume string
	// FailIdentity makes GetCallerIdentity fail likewise.
	FailIdentity string
	// Hang makes every call block until the request is cancelled.
	Hang bool
	// Lifetime, when positive, is how long issued credentials live instead
	// of the DurationSeconds asked for (real STS allows no less than 15
	// minutes; tests of refreshing want seconds).
	Lifetime time.Duration

	calls         []AssumeCall
	issued        []Issued
	identityCalls int
	problems      []string
}

// New starts a fake STS; it is closed when the test ends via Close.
func New() *Fake {
	f := &Fake{stop: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// Close releases hanging requests and stops the server.
func (f *Fake) Close() {
	f.stopOnce.Do(func() { close(f.stop) })
	f.Server.Close()
}

// Set changes the fake's behaviour safely.
func (f *Fake) Set(fn func(f *Fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Calls returns the AssumeRole requests received.
func (f *Fake) Calls() []AssumeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AssumeCall(nil), f.calls...)
}

// Issued returns the credentials handed out.
func (f *Fake) Issued() []Issued {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Issued(nil), f.issued...)
}

// IdentityCalls counts GetCallerIdentity requests.
func (f *Fake) IdentityCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.identityCalls
}

// Problems lists malformed requests the fake rejected (wrong signature
// header, missing parameters, …). A correct client produces none.
func (f *Fake) Problems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

const ns = "https://sts.amazonaws.com/doc/2011-06-15/"

var (
	sigV4 = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/\d{8}/[a-z0-9-]+/sts/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$`)
	})
	sessionNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{2,64}$`) })
	roleArnRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`) })
	tagKeyValueMax = 256
)

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		f.fail(w, http.StatusBadRequest, "InvalidAction", "POST required")
		return
	}
	if err := r.ParseForm(); err != nil {
		f.fail(w, http.StatusBadRequest, "MalformedQueryString", "unparseable body")
		return
	}
	f.mu.Lock()
	hang := f.Hang
	f.mu.Unlock()
	if hang {
		// The body has been read, so a client disconnect cancels r's context.
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	m := sigV4().FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || r.Header.Get("X-Amz-Date") == "" {
		f.reject(w, http.StatusForbidden, "MissingAuthenticationToken", "request is not SigV4-signed: "+r.Header.Get("Authorization"))
		return
	}
	akid := m[1]
	if v := r.PostForm.Get("Version"); v != "2011-06-15" {
		f.reject(w, http.StatusBadRequest, "InvalidParameterValue", "Version = "+v)
		return
	}
	switch r.PostForm.Get("Action") {
	case "GetCallerIdentity":
		f.getCallerIdentity(w, akid)
	case "AssumeRole":
		f.assumeRole(w, r.PostForm, akid)
	default:
		f.reject(w, http.StatusBadRequest, "InvalidAction", "unknown Action "+r.PostForm.Get("Action"))
	}
}

func (f *Fake) getCallerIdentity(w http.ResponseWriter, akid string) {
	f.mu.Lock()
	f.identityCalls++
	msg := f.FailIdentity
	f.mu.Unlock()
	if msg != "" {
		f.fail(w, http.StatusForbidden, "AccessDenied", msg)
		return
	}
	writeXML(w, http.StatusOK, fmt.Sprintf(`<GetCallerIdentityResponse xmlns="%s">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::000000000000:user/agentkeys-daemon</Arn>
    <UserId>AIDA%s</UserId>
    <Account>000000000000</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>`, ns, strings.ToUpper(randHex(8)), requestID()))
}

func (f *Fake) assumeRole(w http.ResponseWriter, form url.Values, akid string) {
	call := AssumeCall{
		RoleArn:         form.Get("RoleArn"),
		RoleSessionName: form.Get("RoleSessionName"),
		Tags:            map[string]string{},
		AccessKeyID:     akid,
	}
	if !roleArnRE().MatchString(call.RoleArn) {
		f.reject(w, http.StatusBadRequest, "ValidationError", "invalid RoleArn "+call.RoleArn)
		return
	}
	if !sessionNameRE().MatchString(call.RoleSessionName) {
		f.reject(w, http.StatusBadRequest, "ValidationError", "invalid RoleSessionName "+call.RoleSessionName)
		return
	}
	call.DurationSeconds = 3600
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			f.reject(w, http.StatusBadRequest, "ValidationError", "invalid DurationSeconds "+d)
			return
		}
		call.DurationSeconds = n
	}
	for i := 1; ; i++ {
		k, kok := form[fmt.Sprintf("Tags.member.%d.Key", i)]
		v, vok := form[fmt.Sprintf("Tags.member.%d.Value", i)]
		if !kok && !vok {
			break
		}
		if !kok || !vok || len(k[0]) == 0 || len(k[0]) > 128 || len(v[0]) > tagKeyValueMax {
			f.reject(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("malformed tag %d", i))
			return
		}
		call.Tags[k[0]] = v[0]
	}
	for i := 1; ; i++ {
		k, ok := form[fmt.Sprintf("TransitiveTagKeys.member.%d", i)]
		if !ok {
			break
		}
		if _, tagged := call.Tags[k[0]]; !tagged {
			f.reject(w, http.StatusBadRequest, "InvalidParameterValue", "transitive tag key "+k[0]+" is not a session tag")
			return
		}
		call.TransitiveTagKeys = append(call.TransitiveTagKeys, k[0])
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	msg := f.FailAssume
	life := f.Lifetime
	f.mu.Unlock()
	if life <= 0 {
		life = time.Duration(call.DurationSeconds) * time.Second
	}
	if msg != "" {
		f.fail(w, http.StatusForbidden, "AccessDenied", msg)
		return
	}
	is := Issued{
		AccessKeyID:     "ASIA" + strings.ToUpper(randHex(8)),
		SecretAccessKey: randHex(20),
		SessionToken:    "FwoG" + randHex(48),
		Expiration:      time.Now().UTC().Add(life).Truncate(time.Second),
	}
	f.mu.Lock()
	f.issued = append(f.issued, is)
	f.mu.Unlock()
	writeXML(w, http.StatusOK, fmt.Sprintf(`<AssumeRoleResponse xmlns="%s">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::000000000000:assumed-role/agentkeys-data-role/%s</Arn>
      <AssumedRoleId>AROA%s:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, ns, call.RoleSessionName, strings.ToUpper(randHex(8)), call.RoleSessionName,
		is.AccessKeyID, is.SecretAccessKey, is.SessionToken, is.Expiration.Format(time.RFC3339), requestID()))
}

// reject records a malformed request and answers an error.
func (f *Fake) reject(w http.ResponseWriter, status int, code, msg string) {
	f.mu.Lock()
	f.problems = append(f.problems, code+": "+msg)
	f.mu.Unlock()
	f.fail(w, status, code, msg)
}

func (f *Fake) fail(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, status, fmt.Sprintf(`<ErrorResponse xmlns="%s">
  <Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>
  <RequestId>%s</RequestId>
</ErrorResponse>`, ns, typ, code, xmlEscape(msg), requestID()))
}

func writeXML(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func requestID() string {
	return randHex(4) + "-" + randHex(2) + "-" + randHex(2) + "-" + randHex(2) + "-" + randHex(6)
}

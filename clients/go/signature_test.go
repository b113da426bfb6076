package taskq_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	taskq "github.com/taskq/taskq/clients/go"
)

// sign computes a v1 signature from the documented formula, independently of the client:
// HMAC-SHA256(secret, t \n METHOD \n target \n queue \n task \n hex(SHA-256(body))), in hex.
func sign(secret string, t int64, method, target, queue, task string, body []byte) string {
	bodyHash := sha256.Sum256(body)
	message := fmt.Sprintf("%d\n%s\n%s\n%s\n%s\n%s", t, method, target, queue, task, hex.EncodeToString(bodyHash[:]))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(message))
	return hex.EncodeToString(mac.Sum(nil))
}

const (
	sigSecret = "whsec-test"
	sigTime   = int64(1767225600)
	sigMethod = "PUT"
	sigTarget = "/base/path%2Fx?x=1&y=a%20b"
	sigQueue  = "emails"
	sigTask   = "task-1"
	sigBody   = `{"to":"ada@example.com"}`
)

func TestSignatureFormulaMatchesAKnownVector(t *testing.T) {
	// Computed with Python's hmac and hashlib from the documented formula: this pins the test
	// helper, so that it cannot drift together with the code under test.
	const want = "ccc92a16a8320a57212d17018478ff955b1ce98e7886549c039c62a839f545d4"
	if got := sign(sigSecret, sigTime, sigMethod, sigTarget, sigQueue, sigTask, []byte(sigBody)); got != want {
		t.Fatalf("sign = %s, want %s", got, want)
	}
	// A secret is used as its UTF-8 bytes; no body hashes the empty string.
	header := "t=1767225600,v1=7d5efbdb46753481e88222b4af26e9a1baa25115a6cbf76944dc7ec452529522"
	if err := taskq.VerifySignature(header, "kéy", "POST", "/", "q", "t", nil, time.Unix(sigTime, 0), 0); err != nil {
		t.Errorf("the known vector with a non-ASCII secret and no body: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	good := sign(sigSecret, sigTime, sigMethod, sigTarget, sigQueue, sigTask, []byte(sigBody))
	other := sign("old-secret", sigTime, sigMethod, sigTarget, sigQueue, sigTask, []byte(sigBody))
	header := fmt.Sprintf("t=%d,v1=%s", sigTime, good)
	now := time.Unix(sigTime+42, 0)

	type request struct {
		header, secret, method, target, queue, task string
		body                                        []byte
		now                                         time.Time
		tolerance                                   time.Duration
	}
	base := request{header, sigSecret, sigMethod, sigTarget, sigQueue, sigTask, []byte(sigBody), now, 0}
	with := func(change func(*request)) request {
		r := base
		change(&r)
		return r
	}
	cases := []struct {
		name  string
		req   request
		valid bool
	}{
		{"correct", base, true},
		{"method in lower case", with(func(r *request) { r.method = "put" }), true},
		{"spaces around entries", with(func(r *request) { r.header = fmt.Sprintf(" t=%d , v1=%s ", sigTime, good) }), true},
		{"v1 before t", with(func(r *request) { r.header = fmt.Sprintf("v1=%s,t=%d", good, sigTime) }), true},
		{"an unknown version is ignored", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v0=zz,v1=%s", sigTime, good) }), true},
		{"rotation: the second v1 matches", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s,v1=%s", sigTime, other, good) }), true},
		{"rotation: the first v1 matches", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s,v1=%s", sigTime, good, other) }), true},
		{"rotation: only other secrets", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s,v1=%s", sigTime, other, other) }), false},
		{"wrong secret", with(func(r *request) { r.secret = "whsec-tesT" }), false},
		{"empty secret", with(func(r *request) { r.secret = "" }), false},
		{"tampered body", with(func(r *request) { r.body = []byte(`{"to":"eve@example.com"}`) }), false},
		{"no body", with(func(r *request) { r.body = nil }), false},
		{"tampered target path", with(func(r *request) { r.target = "/base/path/x?x=1&y=a%20b" }), false},
		{"tampered target query", with(func(r *request) { r.target = "/base/path%2Fx?x=2&y=a%20b" }), false},
		{"target without its query", with(func(r *request) { r.target = "/base/path%2Fx" }), false},
		{"tampered method", with(func(r *request) { r.method = "POST" }), false},
		{"tampered queue", with(func(r *request) { r.queue = "emails2" }), false},
		{"tampered task", with(func(r *request) { r.task = "task-2" }), false},
		{"tampered t", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s", sigTime+1, good) }), false},
		{"signature in upper case hex", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s", sigTime, strings.ToUpper(good)) }), false},
		{"truncated signature", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v1=%s", sigTime, good[:63]) }), false},
		{"300 s old: still within the default tolerance", with(func(r *request) { r.now = time.Unix(sigTime+300, 0) }), true},
		{"301 s old", with(func(r *request) { r.now = time.Unix(sigTime+301, 0) }), false},
		{"301 s in the future", with(func(r *request) { r.now = time.Unix(sigTime-301, 0) }), false},
		{"an hour old", with(func(r *request) { r.now = time.Unix(sigTime+3600, 0) }), false},
		{"within a custom tolerance", with(func(r *request) { r.now, r.tolerance = time.Unix(sigTime+3600, 0), 2*time.Hour }), true},
		{"outside a custom tolerance", with(func(r *request) { r.now, r.tolerance = time.Unix(sigTime+11, 0), 10*time.Second }), false},
		{"zero now is the current time", with(func(r *request) { r.now = time.Time{} }), false},
		{"empty header", with(func(r *request) { r.header = "" }), false},
		{"blank header", with(func(r *request) { r.header = "  " }), false},
		{"no t", with(func(r *request) { r.header = "v1=" + good }), false},
		{"empty t", with(func(r *request) { r.header = "t=,v1=" + good }), false},
		{"t not a number", with(func(r *request) { r.header = "t=soon,v1=" + good }), false},
		{"negative t", with(func(r *request) { r.header = fmt.Sprintf("t=-%d,v1=%s", sigTime, good) }), false},
		{"two t", with(func(r *request) { r.header = fmt.Sprintf("t=%d,t=%d,v1=%s", sigTime, sigTime, good) }), false},
		{"huge t", with(func(r *request) { r.header = "t=99999999999999999999999,v1=" + good }), false},
		{"no v1", with(func(r *request) { r.header = fmt.Sprintf("t=%d", sigTime) }), false},
		{"only another version", with(func(r *request) { r.header = fmt.Sprintf("t=%d,v0=%s", sigTime, good) }), false},
		{"garbage", with(func(r *request) { r.header = "garbage" }), false},
		{"garbage entry", with(func(r *request) { r.header = header + ",garbage" }), false},
		{"semicolons", with(func(r *request) { r.header = fmt.Sprintf("t=%d;v1=%s", sigTime, good) }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.req
			err := taskq.VerifySignature(r.header, r.secret, r.method, r.target, r.queue, r.task, r.body, r.now, r.tolerance)
			if c.valid && err != nil {
				t.Errorf("VerifySignature = %v, want nil", err)
			}
			if !c.valid && !errors.Is(err, taskq.ErrInvalidSignature) {
				t.Errorf("VerifySignature = %v, want an error matching ErrInvalidSignature", err)
			}
		})
	}
}

func TestVerifySignatureUsesTheCurrentTimeByDefault(t *testing.T) {
	now := time.Now().Unix()
	header := fmt.Sprintf("t=%d,v1=%s", now, sign(sigSecret, now, "POST", "/", "q", "t", nil))
	if err := taskq.VerifySignature(header, sigSecret, "POST", "/", "q", "t", []byte{}, time.Time{}, 0); err != nil {
		t.Errorf("a fresh signature: %v", err)
	}
}

func TestVerifyRequest(t *testing.T) {
	const target = "/work/a%2Fb?x=1&y=caf%C3%A9"
	var verdicts []error
	var bodies []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verdicts = append(verdicts, taskq.VerifyRequest(r, sigSecret, 0))
		body, _ := io.ReadAll(r.Body) // VerifyRequest puts the body back
		bodies = append(bodies, string(body))
	}))
	defer server.Close()

	send := func(method, target, body string, headers map[string]string) {
		t.Helper()
		request, err := http.NewRequest(method, server.URL+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			request.Body = http.NoBody
		}
		for name, value := range headers {
			request.Header.Set(name, value)
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		_ = response.Body.Close()
	}
	headers := func(method, target, body string) map[string]string {
		now := time.Now().Unix()
		return map[string]string{
			taskq.SignatureHeader: fmt.Sprintf("t=%d,v1=%s", now, sign(sigSecret, now, method, target, "emails", "task-7", []byte(body))),
			taskq.QueueNameHeader: "emails",
			taskq.TaskNameHeader:  "task-7",
		}
	}

	send("POST", target, "hello", headers("POST", target, "hello"))
	send("DELETE", "/work", "", headers("DELETE", "/work", ""))
	send("POST", target, "hello!", headers("POST", target, "hello"))                     // another body
	send("POST", "/work/a/b?x=1&y=caf%C3%A9", "hello", headers("POST", target, "hello")) // another path
	send("POST", target, "hello", nil)                                                   // unsigned

	if len(verdicts) != 5 {
		t.Fatalf("the handler ran %d times, want 5", len(verdicts))
	}
	if verdicts[0] != nil || verdicts[1] != nil {
		t.Errorf("signed requests: %v, %v; want both valid", verdicts[0], verdicts[1])
	}
	for i, err := range verdicts[2:] {
		if !errors.Is(err, taskq.ErrInvalidSignature) {
			t.Errorf("bad request %d: %v, want ErrInvalidSignature", i, err)
		}
	}
	if bodies[0] != "hello" || bodies[2] != "hello!" {
		t.Errorf("bodies read after VerifyRequest = %q, want them restored", bodies)
	}

	// The target exactly as on the request line, even where Go would encode it otherwise.
	const raw = "/café/%7e?q=ü"
	request := httptest.NewRequest("POST", raw, strings.NewReader("x"))
	for name, value := range headers("POST", raw, "x") {
		request.Header.Set(name, value)
	}
	if err := taskq.VerifyRequest(request, sigSecret, 0); err != nil {
		t.Errorf("VerifyRequest of %s: %v", raw, err)
	}

	// A request built in process (no RequestURI): its URL's path and query.
	request = httptest.NewRequest("PATCH", "http://worker.example.com"+target, strings.NewReader("x"))
	request.RequestURI = ""
	for name, value := range headers("PATCH", target, "x") {
		request.Header.Set(name, value)
	}
	if err := taskq.VerifyRequest(request, sigSecret, 0); err != nil {
		t.Errorf("VerifyRequest of a request without RequestURI: %v", err)
	}
}

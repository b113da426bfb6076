package taskq

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of an HTTP push request that the signature covers.
const (
	// SignatureHeader carries the signature: "t=<unix seconds>,v1=<hex>[,v1=<hex>...]", one
	// v1 per secret the server signs with (several while secrets are rotated).
	SignatureHeader = "X-Taskq-Signature"
	// QueueNameHeader is the queue's id (App Engine's header).
	QueueNameHeader = "X-AppEngine-QueueName"
	// TaskNameHeader is the task's id (App Engine's header).
	TaskNameHeader = "X-AppEngine-TaskName"
)

// DefaultSignatureTolerance is how far the signature's time may be from the receiver's
// clock, either way, when no tolerance is given.
const DefaultSignatureTolerance = 5 * time.Minute

// ErrInvalidSignature is matched (errors.Is) by every error of [VerifySignature] and
// [VerifyRequest] that rejects a request; the error's text says why.
var ErrInvalidSignature = errors.New("taskq: invalid signature")

// VerifySignature checks the X-Taskq-Signature header of an HTTP push request (version v1)
// against secret. It returns nil when one of the header's v1 signatures is the HMAC-SHA256,
// keyed with secret, of
//
//	t + "\n" + METHOD + "\n" + target + "\n" + queue + "\n" + task + "\n" + hex(SHA-256(body))
//
// and t is within tolerance of now; otherwise an error matching [ErrInvalidSignature]
// (a missing or malformed header, a time too far off, no matching signature). target is
// the request target as it was sent (path, and "?" and the query if any, percent-encoding
// untouched: http.Request.RequestURI), queue and task the values of the
// X-AppEngine-QueueName and X-AppEngine-TaskName headers, and body the raw body (nil or
// empty when there is none). A zero now means time.Now(); a tolerance of 0 or less means
// [DefaultSignatureTolerance].
func VerifySignature(header, secret, method, target, queue, task string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret to verify with", ErrInvalidSignature)
	}
	timestamp, signatures, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	if now.IsZero() {
		now = time.Now()
	}
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	seconds, _ := strconv.ParseInt(timestamp, 10, 64) // parseSignatureHeader checked it
	if skew := now.Sub(time.Unix(seconds, 0)).Abs(); skew > tolerance {
		return fmt.Errorf("%w: its time t=%s is %s away from now, more than %s", ErrInvalidSignature,
			timestamp, skew.Truncate(time.Second), tolerance)
	}
	bodyHash := sha256.Sum256(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strings.Join([]string{
		timestamp, strings.ToUpper(method), target, queue, task, hex.EncodeToString(bodyHash[:]),
	}, "\n")))
	expected := []byte(hex.EncodeToString(mac.Sum(nil)))
	for _, signature := range signatures {
		if subtle.ConstantTimeCompare(expected, []byte(signature)) == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrInvalidSignature)
}

// parseSignatureHeader returns the header's t (decimal digits) and its v1 values. Entries
// are separated by commas, with optional spaces around them; empty entries and those of
// other versions are ignored.
func parseSignatureHeader(header string) (timestamp string, signatures []string, err error) {
	if strings.TrimSpace(header) == "" {
		return "", nil, fmt.Errorf("%w: no %s header", ErrInvalidSignature, SignatureHeader)
	}
	for entry := range strings.SplitSeq(header, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		key, value, ok := strings.Cut(entry, "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: malformed %s header (entry %q is not key=value)",
				ErrInvalidSignature, SignatureHeader, entry)
		}
		switch key {
		case "t":
			if timestamp != "" || !isDigits(value) || len(value) > 18 {
				return "", nil, fmt.Errorf("%w: malformed %s header (t must be one time in unix seconds)",
					ErrInvalidSignature, SignatureHeader)
			}
			timestamp = value
		case "v1":
			signatures = append(signatures, value)
		}
	}
	if timestamp == "" {
		return "", nil, fmt.Errorf("%w: malformed %s header (no t)", ErrInvalidSignature, SignatureHeader)
	}
	if len(signatures) == 0 {
		return "", nil, fmt.Errorf("%w: malformed %s header (no v1 signature)", ErrInvalidSignature, SignatureHeader)
	}
	return timestamp, signatures, nil
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// VerifyRequest is [VerifySignature] for a request an http.Handler received: it takes the
// signature, queue and task from the request's headers, the target from r.RequestURI and
// the method from r.Method, reads the body and puts it back (r.Body can be read again
// afterwards), and compares with the current time. A tolerance of 0 or less means
// [DefaultSignatureTolerance]. An error reading the body is returned as it is; every
// rejection matches [ErrInvalidSignature].
//
//	func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
//		if err := taskq.VerifyRequest(r, h.secret, 0); err != nil {
//			http.Error(w, "forbidden", http.StatusForbidden)
//			return
//		}
//		...
//	}
func VerifyRequest(r *http.Request, secret string, tolerance time.Duration) error {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("taskq: reading the request body: %w", err)
		}
	}
	// RequestURI is the target as it was on the request line; a request built by a client
	// (or an absolute-form target, sent to proxies) has its path and query in URL instead.
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	return VerifySignature(r.Header.Get(SignatureHeader), secret, r.Method, target,
		r.Header.Get(QueueNameHeader), r.Header.Get(TaskNameHeader), body, time.Time{}, tolerance)
}

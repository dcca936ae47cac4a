// Package graph will hold the Microsoft Graph source. This file has its wire
// rules, independent of transport: reading Retry-After, classifying Graph's
// replies into the engine's failure classes, refusing links to foreign hosts,
// and capping response sizes.
package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/mailvault/mailvault/domain"
)

// ParseRetryAfter reads a Retry-After value: delay-seconds, which Graph may
// send fractional ("2.128"), or an HTTP-date. A date in the past means no
// wait. Values beyond domain.MaxRetryAfter are clamped. ok is false when the
// value is absent or unreadable, so the caller falls back to its own backoff.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, false
		}
		if f > domain.MaxRetryAfter.Seconds() {
			return domain.MaxRetryAfter, true
		}
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return domain.ClampRetryAfter(t.Sub(now)), true
	}
	return 0, false
}

// ErrorBody is Graph's error reply: {"error":{"code":..., "message":...}}.
type ErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Code string `json:"code"`
		} `json:"innerError"`
	} `json:"error"`
}

// dirtyCodes are the per-item server errors seen in the wild when one item
// cannot be served: the request containing it fails, the others are fine.
var dirtyCodes = map[string]bool{
	"ErrorCorruptData": true, "ErrorInvalidRecipients": true, "ErrorCannotOpenFileAttachment": true,
	"ErrorItemCorrupt": true, "ErrorMimeContentConversionFailed": true,
}

// resyncCodes mean "start the delta query again".
var resyncCodes = map[string]bool{"SyncStateNotFound": true, "ResyncRequired": true, "SyncStateInvalid": true}

// IsResync reports whether a failure asks for a fresh delta round.
func IsResync(f *domain.Failure) bool { return f != nil && resyncCodes[f.Code] }

// Classify turns a Graph reply into nil (success) or a failure of the
// engine's classes. body is the start of the reply body (a few KB suffice).
// Messages are short and never contain the request's headers or token.
func Classify(status int, header http.Header, body []byte, now time.Time) *domain.Failure {
	if status >= 200 && status < 300 {
		return nil
	}
	code, msg, isJSON := parseError(header, body)
	ra, hasRA := ParseRetryAfter(header.Get("Retry-After"), now)
	f := &domain.Failure{Code: code, Message: msg, RetryAfter: ra}
	if f.Code == "" {
		f.Code = fmt.Sprintf("HTTP%d", status)
	}
	switch {
	case resyncCodes[code]:
		f.Class = domain.ClassResync // the pass lists the folder again from the start
	case status == http.StatusTooManyRequests:
		f.Class = domain.ClassThrottled
	case (status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout) && hasRA:
		f.Class = domain.ClassThrottled
	case dirtyCodes[code]:
		f.Class = domain.ClassDirty
	case status == http.StatusNotFound && (code == "ErrorItemNotFound" || code == "ResourceNotFound"):
		// Deleted at the source since it was listed.
		f.Class = domain.ClassGone
	case status >= 500 || status == http.StatusRequestTimeout:
		// Includes 503 with an empty body, Graph's own timeout, and HTML
		// error pages from proxies in front of it.
		f.Class = domain.ClassTransient
	default:
		f.Class = domain.ClassFatal
	}
	if f.Message == "" {
		switch {
		case !isJSON && len(bytes.TrimSpace(body)) > 0:
			f.Message = fmt.Sprintf("HTTP %d with a %s body instead of a Graph error", status, contentType(header))
		default:
			f.Message = fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
		}
	}
	return f
}

func contentType(h http.Header) string {
	ct, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || ct == "" {
		return "untyped"
	}
	return ct
}

func parseError(h http.Header, body []byte) (code, msg string, isJSON bool) {
	if ct := contentType(h); ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return "", "", false
	}
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return "", "", false
	}
	code = eb.Error.Code
	if code == "" {
		code = eb.Error.InnerError.Code
	}
	return code, domain.ShortMessage(eb.Error.Message), true
}

// ErrForeignHost is returned for a link that leaves the configured Graph host:
// the bearer token must never be sent anywhere else.
var ErrForeignHost = errors.New("link points outside the configured Graph host")

// CheckLink resolves a nextLink, deltaLink or redirect against base and
// accepts it only on the same scheme, host and port.
func CheckLink(base *url.URL, link string) (*url.URL, error) {
	u, err := base.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("unreadable link %q: %w", domain.ShortMessage(link), err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) || u.User != nil {
		return nil, fmt.Errorf("%w: %s://%s", ErrForeignHost, u.Scheme, u.Host)
	}
	return u, nil
}

// ErrTooLarge is returned when a reply exceeds the size cap.
var ErrTooLarge = errors.New("reply exceeds the size limit")

// ReadCapped reads at most max bytes of r; a longer reply is an error rather
// than a reason to hold gigabytes in memory.
func ReadCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// DecodeJSON decodes a success reply, classifying what is not JSON: a wrong
// content type or a malformed or truncated body is transient (a proxy or a
// dropped connection), with a message that says which.
func DecodeJSON(header http.Header, body []byte, v any) *domain.Failure {
	if ct := contentType(header); ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return &domain.Failure{Class: domain.ClassTransient, Code: "UnexpectedContentType",
			Message: fmt.Sprintf("expected JSON, got %s", ct)}
	}
	// encoding/json's semantics on json/v2's decoder: the same results and
	// errors, about three times faster on an exportItems reply, whose
	// base64 streams encoding/json scans twice (to validate, then to
	// decode): at thousands of items a second that was a fifth of a
	// backup's CPU.
	if err := jsonv1.Unmarshal(body, v); err != nil {
		msg := "malformed JSON: " + err.Error()
		// encoding/json reports a body that stops mid-value this way.
		if strings.Contains(err.Error(), "unexpected end of JSON input") {
			msg = fmt.Sprintf("truncated JSON reply (%d bytes)", len(body))
		}
		return &domain.Failure{Class: domain.ClassTransient, Code: "MalformedReply", Message: msg}
	}
	return nil
}

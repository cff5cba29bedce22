package gitlab

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/threatgate/threatgate/bot"
)

// Every error the client returns is a *bot.DeliveryError (permanent, or to
// retry after a wait, or to retry with backoff), the one type the
// dispatcher and the worker read; inside it, the errors below say what
// GitLab answered. They also keep their RetryAfter() and Permanent()
// methods, so errors.As finds them either way.

// RateLimitError is GitLab answering 429 Too Many Requests. RetryAfter
// says how long to wait, from the RateLimit-Reset or Retry-After header.
type RateLimitError struct {
	Op   string        // what was being done, "post note on shop/api!12"
	Wait time.Duration // how long GitLab asks to wait
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s: GitLab rate limit reached; retry in %s", e.Op, e.Wait)
}

// RetryAfter returns how long to wait before the next attempt.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

// PermanentError is an answer from GitLab that repeating the request will
// not change (400, 401, 403, 404, 409, 422...). Its message names the
// operation, GitLab's answer and what to fix.
type PermanentError struct {
	Op     string // what was being done, "set status on shop/api@abc1234"
	Status int    // the HTTP status GitLab answered; 0 when threatgate refused before asking
	Msg    string // GitLab's message, "" when it gave none
	Fix    string // what to do about it
}

func (e *PermanentError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": GitLab answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Fix != "" {
		if e.Status != 0 {
			b.WriteString(";")
		} else {
			b.WriteString(":")
		}
		b.WriteString(" ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Permanent reports that retrying will not help.
func (e *PermanentError) Permanent() bool { return true }

// retryableError is a failure that may pass: a 5xx, a timeout, a refused
// connection. It unwraps to the cause so that callers can still match
// context.DeadlineExceeded and the like.
type retryableError struct {
	op, msg string
	err     error
}

func (e *retryableError) Error() string { return e.op + ": " + e.msg }
func (e *retryableError) Unwrap() error { return e.err }

// Fixes named in permanent errors.
const (
	fixToken    = "check the token and its scopes (api), and that its user may act on the project (Developer role or higher)"
	fixNotFound = "project or MR not found, or the token cannot see it"
	fixInvalid  = "GitLab refused the request as invalid; check the GitLab version and the project's settings"
	fixConflict = "the merge request changed meanwhile (for example a new push); the next reconcile sends a fresh request"
)

// defaultRetryAfter is the wait when a 429 names none.
const defaultRetryAfter = 60 * time.Second

// fail turns what client-go returned into an error the dispatcher can act
// on, prefixed with op. It never repeats the token.
func (c *Client) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	// The dispatcher and the worker read what to do from the shared
	// bot.DeliveryError; the GitLab-specific error inside says what
	// happened (errors.As still finds it).
	switch e := c.classify(op, err).(type) {
	case *PermanentError:
		return &bot.DeliveryError{Err: e, Permanent: true}
	case *RateLimitError:
		return &bot.DeliveryError{Err: e, After: e.Wait}
	default:
		return &bot.DeliveryError{Err: e}
	}
}

// classify turns a client-go error into what happened: a permanent
// refusal, a rate limit, or something retrying may fix.
func (c *Client) classify(op string, err error) error {
	if errors.Is(err, gl.ErrNotFound) {
		// client-go returns a bare sentinel for 404, with no response.
		return &PermanentError{Op: op, Status: http.StatusNotFound, Fix: fixNotFound}
	}
	var er *gl.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return &retryableError{op: op, msg: "GitLab did not answer: " + c.redact(err.Error()), err: err}
	}
	code := er.Response.StatusCode
	msg := c.redact(er.Message)
	switch {
	case code == http.StatusTooManyRequests:
		return &RateLimitError{Op: op, Wait: retryAfter(er.Response.Header, c.now())}
	case code == 0 || code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooEarly:
		s := fmt.Sprintf("GitLab answered %d %s", code, http.StatusText(code))
		if msg != "" {
			s += ": " + msg
		}
		return &retryableError{op: op, msg: s, err: err}
	}
	pe := &PermanentError{Op: op, Status: code, Msg: msg}
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		pe.Fix = fixToken
	case http.StatusNotFound:
		pe.Fix = fixNotFound
	case http.StatusConflict:
		pe.Fix = fixConflict
	default:
		pe.Fix = fixInvalid
	}
	return pe
}

// redact removes the token from s, should GitLab or a proxy ever echo it,
// and bounds what an error repeats of a response body.
func (c *Client) redact(s string) string {
	if tok := c.cfg.Token.Reveal(); tok != "" {
		s = strings.ReplaceAll(s, tok, "[redacted]")
	}
	// client-go renders {"message": "..."} as "{message: ...}".
	if inner, ok := strings.CutPrefix(s, "{message: "); ok && strings.HasSuffix(inner, "}") && !strings.Contains(s, "}, {") {
		s = strings.TrimSuffix(inner, "}")
	}
	const limit = 300
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "..."
	}
	return s
}

// retryAfter reads how long a 429 asks to wait: GitLab's RateLimit-Reset
// (a Unix time; small values are read as seconds from now, as the IETF
// draft and some proxies send them), else Retry-After (seconds or an HTTP
// date), else a minute. The wait is at least a second and at most an hour.
func retryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	parsed := false
	if v := strings.TrimSpace(h.Get("RateLimit-Reset")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			parsed = true
			if n < 1_000_000_000 {
				d = time.Duration(n) * time.Second
			} else {
				d = time.Unix(n, 0).Sub(now)
			}
		}
	}
	if d <= 0 {
		if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				parsed, d = true, time.Duration(n)*time.Second
			} else if t, err := http.ParseTime(v); err == nil {
				parsed, d = true, t.Sub(now)
			}
		}
	}
	if !parsed {
		return defaultRetryAfter
	}
	// A reset already past (clock skew) still waits a little.
	return min(max(d, time.Second), time.Hour)
}

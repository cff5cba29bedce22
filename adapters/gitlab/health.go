package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// DefaultGrace is how long GitLab may fail to answer before Health says
// threatgate is not ready.
const DefaultGrace = time.Minute

// Health follows whether GitLab answers threatgate, from the outcomes of
// the Client's own requests (Config.Health): every request that got an
// answer below 500, other than 401, is a success; no answer (refused,
// unresolvable, timed out), a 5xx or a 401 (the token refused, so nothing
// works) is a failure. A request cancelled by its caller counts for
// nothing. Ready turns false once failures have lasted longer than Grace
// with no success in between. Safe for concurrent use.
type Health struct {
	Clock bot.Clock
	Grace time.Duration // default DefaultGrace

	mu      sync.Mutex
	since   time.Time // first failure of the current run of failures; zero while GitLab answers
	reason  string    // the newest failure
	lastOK  time.Time
	checked bool // any outcome at all
	// refused is the first write GitLab refused (403) since the last
	// write it accepted: reads may succeed while no gate can be set.
	refused time.Time
}

// WriteRefused records that GitLab refused a write (403): the token or
// its user may not set statuses or write notes.
func (h *Health) WriteRefused() {
	now := h.Clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refused.IsZero() {
		h.refused = now
	}
}

// WriteAccepted records that GitLab accepted a write.
func (h *Health) WriteAccepted() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refused = time.Time{}
}

// Succeeded records that GitLab answered.
func (h *Health) Succeeded() {
	now := h.Clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.reason, h.lastOK, h.checked = time.Time{}, "", now, true
}

// Failed records that GitLab did not answer usefully, and why (a sentence
// without secrets).
func (h *Health) Failed(reason string) {
	now := h.Clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		h.since = now
	}
	h.reason, h.checked = reason, true
}

// Failing reports whether the newest outcome was a failure.
func (h *Health) Failing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.since.IsZero()
}

// Ready reports whether threatgate can count on GitLab: false once its
// requests have failed for longer than Grace, with why and since when.
func (h *Health) Ready() (bool, string) {
	now := h.Clock.Now()
	grace := h.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.refused.IsZero() && now.Sub(h.refused) > grace {
		return false, fmt.Sprintf("GitLab has refused threatgate's writes (403 Forbidden) for %s (since %s): no gate status can be set; the token needs the api scope and its user Developer access to the projects", now.Sub(h.refused).Round(time.Second), h.refused.UTC().Format(time.RFC3339))
	}
	if h.since.IsZero() {
		return true, ""
	}
	down := now.Sub(h.since)
	if down <= grace {
		return true, ""
	}
	msg := fmt.Sprintf("GitLab has not answered threatgate for %s (since %s): %s", down.Round(time.Second), h.since.UTC().Format(time.RFC3339), h.reason)
	if !h.lastOK.IsZero() {
		msg += fmt.Sprintf("; it last answered at %s", h.lastOK.UTC().Format(time.RFC3339))
	}
	return false, msg
}

// healthTransport tells Health the outcome of every request it carries.
type healthTransport struct {
	next   http.RoundTripper
	health *Health
	redact func(string) string
}

func (t *healthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		// The caller gave up (shutting down): says nothing about GitLab.
	// Reasons name no path or host: /readyz shows them to anyone.
	case err != nil:
		t.health.Failed("no answer: " + publicTransportReason(err))
	case resp.StatusCode >= 500:
		t.health.Failed(fmt.Sprintf("GitLab answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	case resp.StatusCode == http.StatusUnauthorized:
		t.health.Failed("GitLab refuses the token (401 Unauthorized)")
	default:
		t.health.Succeeded()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if resp.StatusCode == http.StatusForbidden {
				t.health.WriteRefused()
			} else if resp.StatusCode < 400 {
				t.health.WriteAccepted()
			}
		}
	}
	return resp, err
}

// publicTransportReason is transportReason without host names or URLs.
func publicTransportReason(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no answer before the timeout (gitlab.timeout)"
	case errors.As(err, &dns):
		return "the GitLab host name does not resolve"
	case errors.As(err, &op):
		return op.Op + ": " + strings.TrimSpace(op.Err.Error())
	}
	return "the request failed (the server's log says why)"
}

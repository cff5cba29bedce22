package gitlab

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Outcomes of a request, as Config.OnRequest is told them: a small fixed
// set, so that a metric labelled with them stays bounded.
const (
	OutcomeOK           = "ok"           // 1xx-3xx
	OutcomeNotFound     = "not_found"    // 404
	OutcomeUnauthorized = "unauthorized" // 401
	OutcomeForbidden    = "forbidden"    // 403
	OutcomeRateLimited  = "rate_limited" // 429
	OutcomeClientError  = "client_error" // any other 4xx
	OutcomeServerError  = "server_error" // 5xx
	OutcomeNoAnswer     = "no_answer"    // no HTTP answer: refused, timed out, cancelled
)

// Outcomes lists every outcome OnRequest can be told.
var Outcomes = []string{OutcomeOK, OutcomeNotFound, OutcomeUnauthorized, OutcomeForbidden, OutcomeRateLimited, OutcomeClientError, OutcomeServerError, OutcomeNoAnswer}

// outcome classifies an answer (nil resp: none).
func outcome(resp *http.Response) string {
	if resp == nil {
		return OutcomeNoAnswer
	}
	switch c := resp.StatusCode; {
	case c < 400:
		return OutcomeOK
	case c == http.StatusNotFound:
		return OutcomeNotFound
	case c == http.StatusUnauthorized:
		return OutcomeUnauthorized
	case c == http.StatusForbidden:
		return OutcomeForbidden
	case c == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case c < 500:
		return OutcomeClientError
	}
	return OutcomeServerError
}

// routeWords are the path segments of GitLab's REST API that threatgate
// calls and that stand for themselves in a route; every other segment is
// a parameter, named after the segment before it.
var routeWords = map[string]bool{
	"api": true, "v4": true, "projects": true, "groups": true, "merge_requests": true,
	"diffs": true, "commits": true, "versions": true, "notes": true, "status_checks": true,
	"status_check_responses": true, "repository": true, "statuses": true,
	"external_status_checks": true, "user": true, "users": true, "pipelines": true,
	"changes": true, "approvals": true, "labels": true,
}

// paramNames names the parameter that follows a segment.
var paramNames = map[string]string{
	"projects": ":id", "groups": ":id", "merge_requests": ":iid", "notes": ":note_id",
	"commits": ":sha", "statuses": ":sha", "pipelines": ":pipeline_id", "users": ":user_id",
	"versions": ":version_id", "status_checks": ":check_id", "external_status_checks": ":check_id",
}

// Route returns the route template of an API path as GitLab documents
// it, "/projects/:id/merge_requests/:iid/diffs": ids, paths, SHAs and
// anything else that is not one of the API's fixed words become
// parameters, so the set of routes is bounded whatever is asked. escaped
// is the path as sent (a project path is one segment, its slashes
// escaped). The "/api/v4" prefix (and a relative URL root before it) is
// left out.
func Route(escaped string) string {
	if i := strings.Index(escaped, "/api/v4/"); i >= 0 {
		escaped = escaped[i+len("/api/v4"):]
	} else if strings.HasSuffix(escaped, "/api/v4") {
		return "/"
	}
	trimmed := strings.Trim(escaped, "/")
	if trimmed == "" {
		return "/"
	}
	segs := strings.Split(trimmed, "/")
	var b strings.Builder
	word := "" // the fixed word just written; "" after a parameter
	for i, s := range segs {
		if i == 8 {
			b.WriteString("/...")
			break
		}
		b.WriteByte('/')
		switch {
		case paramNames[word] != "":
			b.WriteString(paramNames[word])
			word = ""
		case routeWords[s]:
			b.WriteString(s)
			word = s
		default:
			b.WriteString(":param")
			word = ""
		}
	}
	return b.String()
}

// meterTransport tells the limiter every answer's rate-limit headers and
// the observer every request's method, route and outcome.
type meterTransport struct {
	next    http.RoundTripper
	limiter *Limiter
	observe func(method, route, outcome string)
	client  *Client // told GitLab's clock (the Date header)
}

func (t *meterTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if resp != nil {
		t.limiter.Observe(resp.StatusCode, resp.Header)
		if d, derr := http.ParseTime(resp.Header.Get("Date")); derr == nil {
			t.client.sawDate(d)
		}
	}
	if t.observe != nil && !(err != nil && errors.Is(r.Context().Err(), context.Canceled)) {
		t.observe(r.Method, Route(r.URL.EscapedPath()), outcome(resp))
	}
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		// http.Client says "Client.Timeout exceeded" only when it sees
		// its timer fire before the transport's error, which a wrapping
		// transport makes a race; say it here.
		err = &timeoutError{err}
	}
	return resp, err
}

// timeoutError is a request that ran out of time.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string {
	return e.err.Error() + " (Client.Timeout exceeded: gitlab.timeout)"
}
func (e *timeoutError) Unwrap() error   { return e.err }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

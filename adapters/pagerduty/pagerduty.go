package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/threatgate/threatgate/bot"
)

// SinkName is the name the PagerDuty sink has in the outbox
// (Engine.SetSinks, Dispatcher.AddSink).
const SinkName = "pagerduty"

// DefaultTimeout bounds one Events API call when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// What every page says about where it comes from.
const (
	source   = "threatgate" // payload.source
	severity = "critical"   // payload.severity: a lapsed decision on a tier that pages
	client   = "threatgate" // the client shown with the incident
)

// Events API limits and bounds on what an error repeats.
const (
	maxSummary   = 1024    // payload.summary, in characters
	maxErrorBody = 4 << 10 // bytes of an error body read for its message
	maxErrorMsg  = 300     // bytes of PagerDuty's message kept in an error
)

// logDedupKey is the log key of an incident's dedup key.
const logDedupKey = "dedup_key"

// dedupKey is the dedup key of the incident of escalation esc: every page
// about it is one incident (bot.PageKey).
func dedupKey(esc string) string { return bot.PageKey(esc) }

// Config configures a Client.
type Config struct {
	// EventsURL is the Events API v2 base, "https://events.pagerduty.com"
	// (or the EU one, or a proxy); the client appends /v2/enqueue.
	EventsURL string
	// RoutingKey is the integration key of an Events API v2 integration.
	RoutingKey bot.Secret
	// KeySource says where RoutingKey was read from, for the fix a refusal
	// names ("the environment variable THREATGATE_PAGERDUTY_ROUTING_KEY");
	// never the key itself.
	KeySource string
	// DashboardURL is threatgate's public base URL; a page links to
	// DashboardURL + "/escalations/" + the escalation id. "" for no link.
	DashboardURL string
	// Timeout bounds one call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Clock reads a Retry-After given as a date; nil means the wall clock.
	Clock bot.Clock
	// Log is told of each page raised and resolved; nil discards.
	Log *slog.Logger
}

// Client raises and resolves PagerDuty incidents for escalations; it is
// the bot.Sink of SinkName. It is safe for concurrent use.
type Client struct {
	cfg    Config
	host   string // EventsURL's host, for messages
	events *pd.Client
	log    *slog.Logger
}

var _ bot.Sink = (*Client)(nil)

// New builds a Client. It asks PagerDuty nothing (the Events API has no
// call that checks a routing key without raising an alert). It returns an
// error when EventsURL is not an http(s) URL or RoutingKey is empty; the
// error names neither the key nor a password in the URL.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.EventsURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("pagerduty: events_url must be an http or https URL such as https://events.pagerduty.com")
	}
	if cfg.RoutingKey == "" {
		return nil, fmt.Errorf("pagerduty: no routing key; set %s", keySource(cfg.KeySource))
	}
	// go-pagerduty appends "/v2/enqueue" as is.
	cfg.EventsURL = strings.TrimRight(cfg.EventsURL, "/")
	cfg.DashboardURL = strings.TrimRight(cfg.DashboardURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	events := pd.NewClient("", pd.WithV2EventsAPIEndpoint(cfg.EventsURL))
	// No redirects: the body carries the routing key, and a redirect
	// would send it on to wherever the answer points (a 3xx is then an
	// answer, reported as one).
	events.HTTPClient = recorder{&http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	return &Client{cfg: cfg, host: u.Host, events: events, log: log}, nil
}

// Deliver sends a page or resolve effect to PagerDuty; it implements
// bot.Sink. An EffectPage triggers the incident of e.Escalation (summary:
// e.Body() on one line, at most 1024 characters; severity critical;
// details: escalation, project, MR and a link to the escalation); an
// EffectResolve resolves it. Other effects are nothing to do. Either may
// run twice (a retry after a lost answer): PagerDuty dedups by the
// escalation's key, so nobody is paged twice.
//
// It returns the zero MessageRef, and on failure a *bot.DeliveryError:
// permanent for a refusal retrying will not fix, with After for a 429
// that names a Retry-After, plain (retry with backoff) otherwise.
func (c *Client) Deliver(ctx context.Context, e bot.Effect) (bot.MessageRef, error) {
	switch e.Kind {
	case bot.EffectPage:
		return bot.MessageRef{}, c.trigger(ctx, e)
	case bot.EffectResolve:
		return bot.MessageRef{}, c.resolve(ctx, e)
	}
	return bot.MessageRef{}, nil
}

func (c *Client) trigger(ctx context.Context, e bot.Effect) error {
	if e.Escalation == "" {
		return &bot.DeliveryError{Err: &Error{Op: "trigger page " + e.ID, Msg: "the effect names no escalation, so no incident can be named after it"}, Permanent: true}
	}
	op := "trigger the page of " + e.Escalation
	key := dedupKey(e.Escalation)
	link := c.link(e.Escalation)
	details := map[string]any{"escalation": e.Escalation, "effect_id": e.ID}
	if e.Project != "" {
		details["project"] = e.Project
	}
	if e.MRIID != 0 {
		details["mr_iid"] = e.MRIID
	}
	ev := &pd.V2Event{
		RoutingKey: c.cfg.RoutingKey.Reveal(),
		Action:     "trigger",
		DedupKey:   key,
		Client:     client,
		Payload: &pd.V2Payload{
			Summary:   summary(e),
			Source:    source,
			Severity:  severity,
			Component: e.Project,
			Details:   details,
		},
	}
	if link != "" {
		details["link"] = link
		ev.ClientURL = link
		ev.Links = []any{map[string]string{"href": link, "text": e.Escalation + " in threatgate"}}
	}
	if err := c.send(ctx, op, ev); err != nil {
		return err
	}
	c.log.Info("paged on-call", bot.LogEscalationID, e.Escalation, bot.LogEffectID, e.ID, logDedupKey, key)
	return nil
}

func (c *Client) resolve(ctx context.Context, e bot.Effect) error {
	if e.Escalation == "" {
		return &bot.DeliveryError{Err: &Error{Op: "resolve page " + e.ID, Msg: "the effect names no escalation, so it names no incident"}, Permanent: true}
	}
	key := dedupKey(e.Escalation)
	ev := &pd.V2Event{RoutingKey: c.cfg.RoutingKey.Reveal(), Action: "resolve", DedupKey: key}
	if err := c.send(ctx, "resolve the page of "+e.Escalation, ev); err != nil {
		return err
	}
	c.log.Info("page resolved", bot.LogEscalationID, e.Escalation, bot.LogEffectID, e.ID, logDedupKey, key)
	return nil
}

// link is the dashboard page of escalation esc, "" without a dashboard.
func (c *Client) link(esc string) string {
	if c.cfg.DashboardURL == "" {
		return ""
	}
	return c.cfg.DashboardURL + "/escalations/" + url.PathEscape(esc)
}

// summary is the incident's title: the effect's text on one line, cut to
// the Events API's limit (PagerDuty would cut it anyway, less tidily).
func summary(e bot.Effect) string {
	s := strings.Join(strings.Fields(e.Body()), " ")
	if s == "" {
		s = e.Escalation
		if e.Project != "" {
			s += " " + e.Project + "!" + strconv.FormatInt(e.MRIID, 10)
		}
		s += ": security decision overdue"
	}
	if utf8.RuneCountInString(s) <= maxSummary {
		return s
	}
	r := []rune(s)
	return string(r[:maxSummary-1]) + "…"
}

// send posts ev and turns a failure into a *bot.DeliveryError.
func (c *Client) send(ctx context.Context, op string, ev *pd.V2Event) error {
	var a answer
	_, err := c.events.ManageEventWithContext(context.WithValue(ctx, answerKey{}, &a), ev)
	if err == nil {
		return nil
	}
	return c.fail(op, &a, err)
}

// Error is an event PagerDuty did not accept, or did not answer. Its
// message names the operation, PagerDuty's answer and what to fix, never
// the routing key.
type Error struct {
	Op     string // what was being done, "trigger the page of ESC-7"
	Status int    // the HTTP status PagerDuty answered; 0 when none
	Msg    string // PagerDuty's message, or why there was no answer; "" when none
	Fix    string // what to do about it, "" when retrying is the fix
	err    error  // the transport's error, when there was no answer
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": PagerDuty answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Msg != "" {
		b.WriteString(": ")
		b.WriteString(e.Msg)
	}
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap returns the transport's error (a timeout, a refused connection),
// nil when PagerDuty answered.
func (e *Error) Unwrap() error { return e.err }

// fail classifies what ManageEventWithContext returned, with what the
// transport saw of the exchange (a).
func (c *Client) fail(op string, a *answer, err error) error {
	if a.err != nil {
		cause := a.err
		var ue *url.Error
		if errors.As(cause, &ue) {
			cause = ue.Err // without the URL
		}
		return &bot.DeliveryError{Err: &Error{Op: op, Msg: "PagerDuty (" + c.host + ") did not answer: " + c.redact(cause.Error()), err: a.err}}
	}
	status := a.status
	// go-pagerduty returns pagerduty.APIError by value for a status it
	// does not accept; it agrees with the transport, but is the library's
	// own word when the transport saw nothing.
	var ae pd.APIError
	if errors.As(err, &ae) && ae.StatusCode != 0 {
		status = ae.StatusCode
	}
	e := &Error{Op: op, Status: status, Msg: c.message(a.body)}
	switch {
	case status == 0:
		// Nothing reached PagerDuty: the request could not be made.
		e.Msg = c.redact(err.Error())
		return &bot.DeliveryError{Err: e}
	case status >= 200 && status <= 299:
		// Accepted, but the answer is not the Events API's JSON: this is
		// not PagerDuty.
		e.Msg = "the answer is not the Events API's"
		e.Fix = fixURL
		return &bot.DeliveryError{Err: e, Permanent: true}
	case status == http.StatusTooManyRequests:
		return &bot.DeliveryError{Err: e, After: retryAfter(a.retryAfter, c.now())}
	case status >= 500, status == http.StatusRequestTimeout:
		return &bot.DeliveryError{Err: e}
	case status == http.StatusBadRequest, status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Fix = "check the routing key in " + keySource(c.cfg.KeySource) + ": it must be the integration key of an Events API v2 integration"
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed, status < 200, status >= 300 && status <= 399:
		e.Fix = fixURL
	default:
		e.Fix = "PagerDuty refused the event; check pagerduty.events_url and the routing key in " + keySource(c.cfg.KeySource)
	}
	return &bot.DeliveryError{Err: e, Permanent: true}
}

// fixURL is the fix for an answer that does not come from the Events API.
const fixURL = "check pagerduty.events_url: the Events API v2 base such as https://events.pagerduty.com, without /v2/enqueue"

// message reads PagerDuty's error body ({"status", "message", "errors"})
// into one line, without the routing key; "" when it is not that JSON.
func (c *Client) message(body []byte) string {
	var eo pd.EventsAPIV2ErrorObject
	if len(body) == 0 || json.Unmarshal(body, &eo) != nil {
		return ""
	}
	var parts []string
	for _, s := range []string{eo.Status, eo.Message} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	msg := strings.Join(parts, ": ")
	if len(eo.Errors) > 0 {
		msg += " (" + strings.Join(eo.Errors, "; ") + ")"
	}
	return c.redact(strings.TrimSpace(msg))
}

// redact removes the routing key from s, should PagerDuty or a proxy ever
// echo it, and bounds s.
func (c *Client) redact(s string) string {
	if k := c.cfg.RoutingKey.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorMsg {
		s = strings.ToValidUTF8(s[:maxErrorMsg], "") + "..."
	}
	return s
}

func (c *Client) now() time.Time {
	if c.cfg.Clock != nil {
		return c.cfg.Clock.Now()
	}
	return time.Now()
}

// keySource names where the routing key comes from.
func keySource(s string) string {
	if s == "" {
		return "pagerduty.routing_key_env or pagerduty.routing_key_file"
	}
	return s
}

// retryAfter reads a 429's Retry-After (seconds or an HTTP date), at least
// a second and at most an hour; 0 when there is none, for the dispatcher's
// backoff.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		d = time.Duration(min(n, 3600)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	return min(max(d, time.Second), time.Hour)
}

// answer is what the transport saw of one exchange; go-pagerduty keeps
// neither the response's headers nor its body, and flattens transport
// errors with %v.
type answer struct {
	status     int
	retryAfter string
	body       []byte // the start of an error response's body
	err        error  // no answer: the transport's error
}

// answerKey carries a request's *answer on its context.
type answerKey struct{}

// recorder is the pd.HTTPClient of a Client: it fills in the *answer
// that the request's context carries.
type recorder struct{ hc *http.Client }

func (r recorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.hc.Do(req)
	a, _ := req.Context().Value(answerKey{}).(*answer)
	if a == nil {
		return resp, err
	}
	if err != nil {
		a.err = err
		return resp, err
	}
	a.status = resp.StatusCode
	a.retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		// Give the library the whole body back.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(a.body), resp.Body), resp.Body}
	}
	return resp, nil
}

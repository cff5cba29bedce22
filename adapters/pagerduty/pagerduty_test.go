package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/store"
)

const (
	// routingKey is what a PagerDuty integration key looks like (32
	// characters); the fake echoes it in refusals to prove it goes no
	// further.
	routingKey = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY42"
	keySrc     = "the environment variable THREATGATE_PAGERDUTY_ROUTING_KEY"
)

var t0 = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

// call is one request the fake Events API received.
type call struct {
	Method, Path, ContentType string
	Body                      map[string]any // the JSON as sent
	Status                    int            // what the fake answered
}

func (c call) str(k string) string { s, _ := c.Body[k].(string); return s }

func (c call) payload() map[string]any { p, _ := c.Body["payload"].(map[string]any); return p }

// reply is a scripted answer of the fake.
type reply struct {
	status int
	header map[string]string
	body   string // JSON unless header says otherwise
}

// fakeEvents is the Events API v2: it records every call and answers
// each with the next scripted reply, or 202 as PagerDuty does once the
// script is spent (or when down is false).
type fakeEvents struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	script []reply
	down   *reply // answered to every call while set
}

func newFake(t *testing.T) *fakeEvents {
	t.Helper()
	f := &fakeEvents{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEvents) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	c := call{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type")}
	_ = json.Unmarshal(raw, &c.Body)
	f.mu.Lock()
	rep := reply{status: http.StatusAccepted, body: `{"status":"success","message":"Event processed","dedup_key":"` + c.str("dedup_key") + `"}`}
	switch {
	case f.down != nil:
		rep = *f.down
	case len(f.script) > 0:
		rep, f.script = f.script[0], f.script[1:]
	}
	c.Status = rep.status
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

// then scripts the next answers.
func (f *fakeEvents) then(rs ...reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, rs...)
}

// setDown makes every call fail with r until setDown(nil).
func (f *fakeEvents) setDown(r *reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = r
}

func (f *fakeEvents) all() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// accepted returns the calls answered 202 with event_action action.
func (f *fakeEvents) accepted(action string) []call {
	var out []call
	for _, c := range f.all() {
		if c.Status == http.StatusAccepted && c.str("event_action") == action {
			out = append(out, c)
		}
	}
	return out
}

var (
	serverError = reply{status: 500, body: `{"status":"error","message":"internal error"}`}
	invalid     = reply{status: 400, body: `{"status":"invalid event","message":"Event object is invalid","errors":["routing key ` + routingKey + ` is invalid"]}`}
)

func newClient(t *testing.T, f *fakeEvents, log *slog.Logger) *Client {
	t.Helper()
	c, err := New(Config{EventsURL: f.URL + "/", RoutingKey: routingKey, KeySource: keySrc,
		DashboardURL: "https://threatgate.example.com/", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func page(id, esc string) bot.Effect {
	return bot.Effect{ID: id, Kind: bot.EffectPage, Escalation: esc, Project: "shop/api", MRIID: 12,
		Text: esc + " shop/api!12 T3 critical: decision overdue since 2026-05-04 09:00 UTC"}
}

func resolve(id, esc string) bot.Effect {
	return bot.Effect{ID: id, Kind: bot.EffectResolve, Escalation: esc}
}

// TestTrigger: a page is one trigger event on /v2/enqueue whose dedup key
// names the escalation, with the summary, source, severity and details.
func TestTrigger(t *testing.T) {
	f := newFake(t)
	c := newClient(t, f, nil)
	ref, err := c.Deliver(context.Background(), page("ESC-7/001/000", "ESC-7"))
	if err != nil || ref != (bot.MessageRef{}) {
		t.Fatalf("Deliver = %+v, %v; want the zero ref, nil", ref, err)
	}
	calls := f.all()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	got := calls[0]
	if got.Method != http.MethodPost || got.Path != "/v2/enqueue" || got.ContentType != "application/json" {
		t.Errorf("request = %s %s (%s), want POST /v2/enqueue (application/json)", got.Method, got.Path, got.ContentType)
	}
	for k, want := range map[string]string{"routing_key": routingKey, "event_action": "trigger", "dedup_key": "threatgate/ESC-7",
		"client": "threatgate", "client_url": "https://threatgate.example.com/escalations/ESC-7"} {
		if v := got.str(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	p := got.payload()
	for k, want := range map[string]string{"summary": "ESC-7 shop/api!12 T3 critical: decision overdue since 2026-05-04 09:00 UTC",
		"source": "threatgate", "severity": "critical", "component": "shop/api"} {
		if v, _ := p[k].(string); v != want {
			t.Errorf("payload.%s = %q, want %q", k, v, want)
		}
	}
	d, _ := p["custom_details"].(map[string]any)
	if d["escalation"] != "ESC-7" || d["project"] != "shop/api" || d["mr_iid"] != float64(12) || d["link"] != "https://threatgate.example.com/escalations/ESC-7" {
		t.Errorf("custom_details = %v", d)
	}
	if links, _ := got.Body["links"].([]any); len(links) != 1 {
		t.Errorf("links = %v, want the escalation's page", got.Body["links"])
	}
}

// TestTriggerSummary: the summary is one line of at most 1024 characters;
// an effect without text still says what is overdue.
func TestTriggerSummary(t *testing.T) {
	f := newFake(t)
	c := newClient(t, f, nil)
	long := page("A", "ESC-1")
	long.Text = "ESC-1\nline two " + strings.Repeat("é", 2000)
	bare := page("B", "ESC-2")
	bare.Text = ""
	for _, e := range []bot.Effect{long, bare} {
		if _, err := c.Deliver(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.all()
	s0, _ := calls[0].payload()["summary"].(string)
	if n := len([]rune(s0)); n != maxSummary || strings.Contains(s0, "\n") || !strings.HasPrefix(s0, "ESC-1 line two é") {
		t.Errorf("long summary: %d characters, %q...; want 1024 on one line", n, s0[:20])
	}
	if s1, _ := calls[1].payload()["summary"].(string); s1 != "ESC-2 shop/api!12: security decision overdue" {
		t.Errorf("summary without text = %q", s1)
	}
}

// TestResolve: a resolve names only the key, the action and the dedup key
// of the escalation's incident.
func TestResolve(t *testing.T) {
	f := newFake(t)
	c := newClient(t, f, nil)
	if _, err := c.Deliver(context.Background(), resolve("ESC-7/002/000", "ESC-7")); err != nil {
		t.Fatal(err)
	}
	calls := f.all()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	want := map[string]any{"routing_key": routingKey, "event_action": "resolve", "dedup_key": "threatgate/ESC-7"}
	if len(calls[0].Body) != len(want) {
		t.Errorf("resolve body = %v, want only %v", calls[0].Body, want)
	}
	for k, v := range want {
		if calls[0].Body[k] != v {
			t.Errorf("%s = %v, want %v", k, calls[0].Body[k], v)
		}
	}
}

// TestRepeatedTriggerOneIncident: two pages of one escalation (a retry, or
// a second lapse) carry the same dedup key, so PagerDuty keeps one
// incident; another escalation's page is another incident.
func TestRepeatedTriggerOneIncident(t *testing.T) {
	f := newFake(t)
	c := newClient(t, f, nil)
	for _, e := range []bot.Effect{page("ESC-7/001/000", "ESC-7"), page("ESC-7/005/000", "ESC-7"), page("ESC-8/006/000", "ESC-8")} {
		if _, err := c.Deliver(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	calls := f.all()
	if k0, k1 := calls[0].str("dedup_key"), calls[1].str("dedup_key"); k0 != k1 || k0 != dedupKey("ESC-7") {
		t.Errorf("dedup keys of one escalation = %q, %q; want both %q", k0, k1, dedupKey("ESC-7"))
	}
	if k2 := calls[2].str("dedup_key"); k2 == calls[0].str("dedup_key") {
		t.Errorf("another escalation's dedup key = %q, want its own", k2)
	}
}

// TestOtherEffectsIgnored: the pager has nothing to do with chat or forge
// effects.
func TestOtherEffectsIgnored(t *testing.T) {
	f := newFake(t)
	c := newClient(t, f, nil)
	for _, k := range []bot.EffectKind{bot.EffectStatus, bot.EffectMRNote, bot.EffectThreadPost, bot.EffectThreadSummary, bot.EffectRefresh} {
		if ref, err := c.Deliver(context.Background(), bot.Effect{ID: "X", Kind: k, Escalation: "ESC-1", Text: "x"}); err != nil || ref != (bot.MessageRef{}) {
			t.Errorf("%s: %+v, %v; want nothing", k, ref, err)
		}
	}
	if n := len(f.all()); n != 0 {
		t.Errorf("%d calls, want none", n)
	}
}

// TestErrors: what each answer makes of a delivery. The routing key is in
// no error, even when PagerDuty echoes it.
func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name      string
		reply     reply
		permanent bool
		after     time.Duration
		want      []string // in the error text
	}{
		{"500", serverError, false, 0, []string{"trigger the page of ESC-7", "500 Internal Server Error", "internal error"}},
		{"503 not JSON", reply{status: 503, header: map[string]string{"Content-Type": "text/html"}, body: "<html>down</html>"}, false, 0, []string{"503"}},
		{"408", reply{status: 408}, false, 0, []string{"408"}},
		{"429 with Retry-After", reply{status: 429, header: map[string]string{"Retry-After": "30"}, body: `{"status":"throttle event","message":"Requests for this service are arriving too quickly."}`}, false, 30 * time.Second, []string{"429", "arriving too quickly"}},
		{"429 with a date", reply{status: 429, header: map[string]string{"Retry-After": t0.Add(2 * time.Minute).Format(http.TimeFormat)}}, false, 2 * time.Minute, []string{"429"}},
		{"429 bare", reply{status: 429, header: map[string]string{"Content-Type": "text/plain"}, body: "slow down"}, false, 0, []string{"429"}},
		{"400", invalid, true, 0, []string{"400 Bad Request", "Event object is invalid", "check the routing key in " + keySrc}},
		{"403", reply{status: 403}, true, 0, []string{"403", keySrc}},
		{"404", reply{status: 404, header: map[string]string{"Content-Type": "text/html"}, body: "<h1>not here</h1>"}, true, 0, []string{"404", "pagerduty.events_url"}},
		{"202 not JSON", reply{status: 202, header: map[string]string{"Content-Type": "text/html"}, body: "<html>captive portal</html>"}, true, 0, []string{"pagerduty.events_url"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			var logs bytes.Buffer
			c := newClient(t, f, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			c.cfg.Clock = bottest.NewClock(t0)
			f.then(tt.reply)
			_, err := c.Deliver(context.Background(), page("ESC-7/001/000", "ESC-7"))
			var de *bot.DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want a *bot.DeliveryError", err, err)
			}
			if de.Permanent != tt.permanent || de.After != tt.after {
				t.Errorf("Permanent, After = %v, %v; want %v, %v (%v)", de.Permanent, de.After, tt.permanent, tt.after, err)
			}
			t.Log(err)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("err = %v, want an *Error inside", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), routingKey) || strings.Contains(logs.String(), routingKey) {
				t.Errorf("the routing key leaked: err %q, log %q", err, logs.String())
			}
		})
	}
}

// TestNoAnswer: a PagerDuty that does not answer (gone, or too slow) is
// retried; the error keeps the transport's cause.
func TestNoAnswer(t *testing.T) {
	gone := newFake(t)
	c := newClient(t, gone, nil)
	gone.Close()
	_, err := c.Deliver(context.Background(), resolve("R", "ESC-7"))
	var de *bot.DeliveryError
	if !errors.As(err, &de) || de.Permanent || de.After != 0 || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("server gone: err = %v, want a plain retry saying it did not answer", err)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	c, err = New(Config{EventsURL: slow.URL, RoutingKey: routingKey, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Deliver(context.Background(), page("P", "ESC-7"))
	if !errors.As(err, &de) || de.Permanent || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow server: err = %v, want a plain retry wrapping the deadline", err)
	}
	if strings.Contains(err.Error(), routingKey) {
		t.Errorf("err = %q names the routing key", err)
	}
}

// TestNew: a bad events_url or a missing key is refused, naming neither
// the key nor a password.
func TestNew(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{EventsURL: "events.pagerduty.com", RoutingKey: routingKey}, "events_url"},
		{Config{EventsURL: "ftp://user:hunter2@events.pagerduty.com", RoutingKey: routingKey}, "events_url"},
		{Config{EventsURL: "https://events.pagerduty.com", KeySource: keySrc}, keySrc},
	} {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s) = %v, want an error naming %q", tt.cfg.EventsURL, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), routingKey) {
			t.Errorf("New error %q leaks a secret", err)
		}
	}
}

// recordingSink is another sink (the forge) that records what it got.
type recordingSink struct {
	mu  sync.Mutex
	got []string
}

func (s *recordingSink) Deliver(_ context.Context, e bot.Effect) (bot.MessageRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, e.Text)
	return bot.MessageRef{}, nil
}

func (s *recordingSink) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// TestOutageThroughDispatcher: effects committed to a real store go out
// through a real dispatcher. While PagerDuty answers 500 the page waits in
// the outbox (the resolve queued behind it waits too), and the forge's
// queue of the same escalation is not held up; once PagerDuty is back the
// page is delivered exactly once, then the resolve.
func TestOutageThroughDispatcher(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := bottest.NewClock(t0)
	f := newFake(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pager := newClient(t, f, log)
	forge := &recordingSink{}
	d := bot.NewDispatcher(db, nil, nil, nil, clock, log)
	d.AddSink(SinkName, pager)
	d.AddSink("forge", forge)
	commit := func(effects ...bot.Effect) {
		t.Helper()
		if _, err := db.Commit(ctx, &bot.Commit{Effects: effects, At: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func() int {
		t.Helper()
		n, err := d.DeliverDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	note := func(text string) bot.Effect {
		return bot.Effect{Kind: bot.EffectMRNote, Escalation: "ESC-7", Project: "shop/api", MRIID: 12, Text: text, Sink: "forge"}
	}
	pg := page("", "ESC-7")
	pg.Sink = SinkName

	f.setDown(&serverError)
	commit(pg, note("lapsed"))
	if n := deliver(); n != 1 {
		t.Errorf("first pass delivered %d, want the forge note only", n)
	}
	if got := forge.texts(); len(got) != 1 || got[0] != "lapsed" {
		t.Errorf("forge got %q, want the note at once", got)
	}
	if n := len(f.all()); n != 1 {
		t.Fatalf("PagerDuty got %d calls, want 1 (failed)", n)
	}

	// During the outage: the resolve waits behind the page; the forge's
	// next effect goes out at once.
	clock.Advance(time.Second / 2)
	commit(bot.Effect{Kind: bot.EffectResolve, Escalation: "ESC-7", Sink: SinkName}, note("decided"))
	if n := deliver(); n != 1 {
		t.Errorf("pass during the outage delivered %d, want the forge note", n)
	}
	if got := forge.texts(); len(got) != 2 || got[1] != "decided" {
		t.Errorf("forge got %q, want the second note without delay", got)
	}
	for range 3 {
		clock.Advance(5 * time.Minute) // the dispatcher's longest backoff
		deliver()
	}
	for _, c := range f.all() {
		if c.str("event_action") != "trigger" {
			t.Fatalf("PagerDuty got a %s while the page was failing; the resolve must wait", c.str("event_action"))
		}
	}
	pending, err := db.PendingEffects(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Fatalf("outbox during the outage = %+v, want the page and the resolve", pending)
	}
	for _, rec := range pending {
		switch rec.Effect.Kind {
		case bot.EffectPage:
			if rec.Attempts != 4 || rec.Parked || !strings.Contains(rec.LastError, "500") {
				t.Errorf("page during the outage = %+v, want 4 attempts, not parked, failing with 500", rec)
			}
			if strings.Contains(rec.LastError, routingKey) {
				t.Errorf("the outbox's last error names the routing key: %q", rec.LastError)
			}
		case bot.EffectResolve:
			if rec.Attempts != 0 {
				t.Errorf("resolve tried %d times while the page failed, want 0", rec.Attempts)
			}
		}
	}

	// PagerDuty is back.
	f.setDown(nil)
	clock.Advance(5 * time.Minute)
	if n := deliver(); n != 2 {
		t.Errorf("pass after the outage delivered %d, want the page and the resolve", n)
	}
	clock.Advance(time.Hour)
	if n := deliver(); n != 0 {
		t.Errorf("a later pass delivered %d, want nothing", n)
	}
	triggers, resolves := f.accepted("trigger"), f.accepted("resolve")
	if len(triggers) != 1 || len(resolves) != 1 {
		t.Fatalf("PagerDuty accepted %d triggers and %d resolves, want one each", len(triggers), len(resolves))
	}
	calls := f.all()
	if last := calls[len(calls)-1]; last.str("event_action") != "resolve" {
		t.Errorf("last call = %s, want the resolve after the trigger", last.str("event_action"))
	}
	for _, c := range calls {
		if c.str("dedup_key") != "threatgate/ESC-7" {
			t.Errorf("dedup_key = %q, want threatgate/ESC-7 on every call", c.str("dedup_key"))
		}
	}
	if pending, _ := db.PendingEffects(ctx, 0); len(pending) != 0 {
		t.Errorf("%d effects still pending", len(pending))
	}
	if strings.Contains(logs.String(), routingKey) {
		t.Error("the routing key is in the log")
	}
}

// TestPermanentParks: a refused routing key parks the page (retried
// hours later, holding nothing up) and says what to fix.
func TestPermanentParks(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := bottest.NewClock(t0)
	f := newFake(t)
	d := bot.NewDispatcher(db, nil, nil, nil, clock, nil)
	d.AddSink(SinkName, newClient(t, f, nil))
	pg := page("", "ESC-9")
	pg.Sink = SinkName
	f.then(invalid)
	if _, err := db.Commit(ctx, &bot.Commit{Effects: []bot.Effect{pg}, At: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	pending, _ := db.PendingEffects(ctx, 0)
	if len(pending) != 1 || !pending[0].Parked || !strings.Contains(pending[0].LastError, keySrc) {
		t.Fatalf("outbox = %+v, want the page parked with the fix", pending)
	}
	if strings.Contains(pending[0].LastError, routingKey) {
		t.Errorf("LastError %q names the routing key", pending[0].LastError)
	}
	if !pending[0].NextAttempt.After(t0.Add(time.Hour)) {
		t.Errorf("NextAttempt = %s, want hours later", pending[0].NextAttempt)
	}
}

// TestNoRedirects: a redirect is not followed, so the routing key in the
// body goes nowhere else; the page fails for good, naming the events URL.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v2/enqueue", http.StatusPermanentRedirect)
	}))
	defer redirect.Close()
	c, err := New(Config{EventsURL: redirect.URL, RoutingKey: "R0UTINGKEY0123456789012345678901", KeySource: "the environment variable X"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Deliver(context.Background(), bot.Effect{ID: "E1", Kind: bot.EffectPage, Escalation: "ESC-1", Text: "lapsed"})
	if err == nil {
		t.Fatal("a redirected page was taken as delivered")
	}
	if elsewhere.Load() != 0 {
		t.Errorf("the redirect was followed: the routing key went elsewhere")
	}
}

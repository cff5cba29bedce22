package main

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
	"testing"

	"github.com/threatgate/threatgate/bot"
)

const pdKey = "PDR0UT1NGKEYPDR0UT1NGKEYPDR0UT1N"

// pdEvents is a fake Events API v2 that records each event's body and
// answers with status (202 when 0).
type pdEvents struct {
	*httptest.Server
	mu     sync.Mutex
	paths  []string
	bodies []map[string]any
	status int
}

func newPDEvents(t *testing.T) *pdEvents {
	t.Helper()
	f := &pdEvents{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		f.mu.Lock()
		f.paths, f.bodies = append(f.paths, r.URL.Path), append(f.bodies, body)
		status := f.status
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
			io.WriteString(w, `{"status":"invalid event","message":"Event object is invalid","errors":["'routing_key' is invalid"]}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"x"}`)
	}))
	t.Cleanup(f.Close)
	return f
}

// TestPagerDutyFromConfig: the pagerduty section and the routing key from
// the environment build a client that pages through events_url, with the
// escalation's dedup key and a link under web.public_url.
func TestPagerDutyFromConfig(t *testing.T) {
	f := newPDEvents(t)
	cfg := mustLoad(t, "pagerduty:\n  events_url: "+f.URL+"\nweb:\n  public_url: https://tg.example.com/\n")
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	key, _, err := cfg.PagerDuty.RoutingKey(envOf(map[string]string{"THREATGATE_PAGERDUTY_ROUTING_KEY": pdKey}))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	p, err := newPagerDuty(cfg.PagerDuty, Secrets{PagerDutyRoutingKey: key}, cfg.PublicURL(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("newPagerDuty = %v", err)
	}
	var _ bot.Sink = p
	ctx := context.Background()
	if _, err := p.Deliver(ctx, bot.Effect{ID: "ESC-7/1/000", Kind: bot.EffectPage, Escalation: "ESC-7", Project: "shop/api", MRIID: 12, Text: "ESC-7 shop/api!12 T3 critical: decision overdue"}); err != nil {
		t.Fatalf("page: %v", err)
	}
	if _, err := p.Deliver(ctx, bot.Effect{ID: "ESC-7/2/000", Kind: bot.EffectResolve, Escalation: "ESC-7"}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) != 2 || f.paths[0] != "/v2/enqueue" {
		t.Fatalf("PagerDuty got %d events at %q, want 2 at /v2/enqueue", len(f.bodies), f.paths)
	}
	for i, action := range []string{"trigger", "resolve"} {
		b := f.bodies[i]
		if b["routing_key"] != pdKey || b["event_action"] != action || b["dedup_key"] != "threatgate/ESC-7" {
			t.Errorf("event %d = %v, want a %s of threatgate/ESC-7 with the key", i, b, action)
		}
	}
	if u := f.bodies[0]["client_url"]; u != "https://tg.example.com/escalations/ESC-7" {
		t.Errorf("client_url = %v, want the escalation's page", u)
	}
	if strings.Contains(logs.String(), pdKey) {
		t.Errorf("the routing key is in the log: %s", logs.String())
	}
}

// TestPagerDutyRefusedKeyNamesItsFile: a routing key PagerDuty refuses is
// a permanent error naming the file it came from, never the key.
func TestPagerDutyRefusedKeyNamesItsFile(t *testing.T) {
	f := newPDEvents(t)
	f.status = http.StatusBadRequest
	file := writeSecret(t, pdKey+"\n", 0o600)
	cfg := mustLoad(t, "pagerduty:\n  events_url: "+f.URL+"\n  routing_key_file: "+file+"\n")
	key, _, err := cfg.PagerDuty.RoutingKey(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPagerDuty(cfg.PagerDuty, Secrets{PagerDutyRoutingKey: key}, cfg.PublicURL(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Deliver(context.Background(), bot.Effect{ID: "E", Kind: bot.EffectPage, Escalation: "ESC-3", Text: "ESC-3 overdue"})
	var de *bot.DeliveryError
	if !errors.As(err, &de) || !de.Permanent || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "pagerduty.routing_key_file") {
		t.Fatalf("err = %v, want a permanent error naming %s", err, file)
	}
	if strings.Contains(err.Error(), pdKey) {
		t.Errorf("err %q names the routing key", err)
	}
}

// TestPagerDutyNoKey: without a routing key there is no client.
func TestPagerDutyNoKey(t *testing.T) {
	cfg := mustLoad(t, "pagerduty: {}\n")
	_, err := newPagerDuty(cfg.PagerDuty, Secrets{}, cfg.PublicURL(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "THREATGATE_PAGERDUTY_ROUTING_KEY") {
		t.Errorf("newPagerDuty without a key = %v, want an error naming the variable", err)
	}
}

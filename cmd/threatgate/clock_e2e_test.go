package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// A tier whose decision window is seconds and a sweep every second: the
// escalation lapses and on-call is paged with no other input.
const clockPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    first_response: 1s
    decision: 2s
    page_on_lapse: true
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
schedule:
  sweep: "@every 1s"
`

// pdFake is a fake PagerDuty Events API v2 that records every event.
type pdFake struct {
	mu     sync.Mutex
	events []map[string]any
	got    chan struct{}
}

func (f *pdFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev map[string]any
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &ev)
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	select {
	case f.got <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"status":"success","message":"Event processed","dedup_key":%q}`, ev["dedup_key"])
}

// TestServePagesOnLapseWithoutInput: through serve's own wiring (webhook
// intake, worker, engine, the schedule's sweep, dispatcher, the
// PagerDuty sink), an escalation whose two-second decision window passes
// pages on-call once, and the GitLab gate was set meanwhile.
func TestServePagesOnLapseWithoutInput(t *testing.T) {
	gl := gitlabtest.New(t)
	for name, id := range secUsers {
		gl.SetUser(name, id)
	}
	pd := &pdFake{got: make(chan struct{}, 16)}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "threatgate.yaml")
	os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:0\ndata_dir: data\ngitlab:\n  url: "+gl.URL+"\n  status_name: "+secStatus+
		"\npagerduty:\n  events_url: "+pdSrv.URL+"\nweb:\n  dashboard_token_env: TG_DASH\n"), 0o600)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken,
		"THREATGATE_PAGERDUTY_ROUTING_KEY": "R0UTINGKEY0123456789012345678901"}
	sec, _, err := cfg.LoadSecrets(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Load("clock.yaml", []byte(clockPolicy))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.DataDir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, sec, pol, db, wallClock{}, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		db.Close()
	}()

	sha := strings.Repeat("a", 40)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 1, Title: "auth change", Author: "ann", SHA: sha, HeadPipelineID: 501, UpdatedAt: time.Now(),
		Diffs: []gitlabtest.Diff{{OldPath: "src/auth/a.go", NewPath: "src/auth/a.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	body, _ := json.Marshal(map[string]any{"object_kind": "merge_request", "project": map[string]any{"path_with_namespace": "shop/api"},
		"object_attributes": map[string]any{"iid": 1, "action": "open"}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", webhookSecret)
	req.Header.Set("X-Gitlab-Event-UUID", "clock-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	select {
	case <-pd.got:
	case <-time.After(20 * time.Second):
		e, _ := db.FindByMR(context.Background(), "shop/api", 1)
		t.Fatalf("no page within 20s of a 2s decision window; escalation %+v", e)
	}
	pd.mu.Lock()
	first := pd.events[0]
	pd.mu.Unlock()
	if first["event_action"] != "trigger" || first["dedup_key"] != "threatgate/ESC-1" {
		t.Errorf("first PagerDuty event %v", first)
	}
	if g := statusOn(gl, sha); !strings.HasPrefix(g, "pending") {
		t.Errorf("gate %q, want pending", g)
	}
	// More sweeps pass; the page is not sent again.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-pd.got:
			t.Fatalf("a second PagerDuty event: %v", pd.events)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// statusOn returns the newest gate status on sha.
func statusOn(gl *gitlabtest.Server, sha string) string {
	var last *gitlabtest.Status
	for _, s := range gl.Statuses("shop/api", sha) {
		if s.Name == secStatus && (last == nil || s.ID > last.ID) {
			s := s
			last = &s
		}
	}
	if last == nil {
		return ""
	}
	return last.State
}

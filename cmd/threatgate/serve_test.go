package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

const (
	webhookSecret  = "wh-secret-3f9a1c"
	dashboardToken = "dash-token-77e2"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeEndToEnd(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Title: "Rotate sessions", Author: "ann", SHA: strings.Repeat("a", 40), HeadPipelineID: 9,
		Diffs: []gitlabtest.Diff{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "threatgate.yaml")
	os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:0\ndata_dir: data\ngitlab:\n  url: "+gl.URL+"\nweb:\n  dashboard_token_env: TG_DASH\n"), 0o600)
	env := map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sec, _, err := cfg.LoadSecrets(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.DataDir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newServer(cfg, sec, pol, db, wallClock{}, log, extras{})
	if err != nil {
		t.Fatal(err)
	}
	delivered := make(chan bot.EffectKind, 100)
	count := s.dispatcher.OnResult
	s.dispatcher.OnResult = func(k bot.EffectKind, err error) {
		count(k, err)
		if err == nil {
			delivered <- k
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz", ""); code != 200 {
		t.Errorf("/readyz %d", code)
	}

	body := []byte(`{"object_kind":"merge_request","project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":12,"action":"open","state":"opened"}}`)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", webhookSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()

	// Wait (with a deadline) until the pending status has been delivered.
	deadline := time.After(20 * time.Second)
	for got := false; !got; {
		select {
		case k := <-delivered:
			got = k == bot.EffectStatus
		case <-deadline:
			t.Fatal("no commit status delivered within 20s")
		}
	}
	if sts := gl.Statuses("shop/api", strings.Repeat("a", 40)); len(sts) != 1 || sts[0].State != "pending" || sts[0].PipelineID != 9 {
		t.Errorf("statuses: %+v", sts)
	}

	if code, _ := get("/api/escalations", ""); code != 401 {
		t.Errorf("/api/escalations without the token: %d, want 401", code)
	}
	code, out := get("/api/escalations", dashboardToken)
	if code != 200 {
		t.Fatalf("/api/escalations: %d %s", code, out)
	}
	var page struct{ Items []map[string]any }
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Items) != 1 {
		t.Fatalf("/api/escalations: %v %s", err, out)
	}
	list := page.Items
	for _, k := range []string{"id", "project", "mr_iid", "state", "tier", "head_sha", "missing_artifacts", "approvals", "created_at", "decision_due"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("/api/escalations item lacks %q", k)
		}
	}
	if list[0]["tier"] != "T2" || list[0]["state"] != "awaiting_artifacts" {
		t.Errorf("item: %v", list[0])
	}

	if code, _ := get("/metrics", ""); code != 401 {
		t.Errorf("/metrics without the dashboard token: %d, want 401", code)
	}
	code, metrics := get("/metrics", dashboardToken)
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`threatgate_webhook_requests_total{result="accepted",source="gitlab"} 1`,
		`threatgate_escalations{state="awaiting_artifacts",tier="T2"} 1`,
		`threatgate_escalations_open{state="awaiting_artifacts",tier="T2"} 1`,
		`threatgate_webhook_processing_seconds_count{kind="Merge Request Hook",result="ok"} 1`,
		`threatgate_outbox_deliveries_total{kind="status"}`,
		`threatgate_outbox_depth`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no graceful shutdown within 20s")
	}
	for _, secret := range []string{webhookSecret, dashboardToken, gl.Token} {
		if strings.Contains(logs.String(), secret) || strings.Contains(metrics, secret) {
			t.Errorf("a secret leaked into the logs or /metrics")
		}
	}
}

func TestExplainLiveMR(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Title: "Rotate sessions", Author: "ann",
		Diffs: []gitlabtest.Diff{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	t.Setenv("THREATGATE_GITLAB_TOKEN", gl.Token)
	code, out, stderr := runCLI(t, "", "policy", "explain", "--format", "json", "--mr", gl.URL+"/shop/api/-/merge_requests/12")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, `"tier": "T2"`) || !strings.Contains(out, "internal/auth/session.go") {
		t.Errorf("output:\n%s", out)
	}
	for _, r := range gl.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("explain --mr wrote to GitLab: %s %s", r.Method, r.Path)
		}
	}
	code, _, stderr = runCLI(t, "", "policy", "explain", "--mr", "https://gitlab.example.com/nope")
	if code != exitFinding || !strings.Contains(stderr, "merge request URL") {
		t.Errorf("bad URL: exit %d, %q", code, stderr)
	}
	t.Setenv("THREATGATE_GITLAB_TOKEN", "")
	code, _, stderr = runCLI(t, "", "policy", "explain", "--mr", gl.URL+"/shop/api/-/merge_requests/12")
	if code != exitFinding || !strings.Contains(stderr, "THREATGATE_GITLAB_TOKEN") {
		t.Errorf("no token: exit %d, %q", code, stderr)
	}
}

func TestPagesRefuseForeignHostsWithoutAToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Web = &WebConfig{Console: true}
	pol, _ := policies.Default()
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := newServer(cfg, Secrets{}, pol, db, wallClock{}, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{
		"127.0.0.1:8080": 200, "localhost:8080": 200, "[::1]:8080": 200,
		"attacker.example:8080": http.StatusMisdirectedRequest, "evil.127.0.0.1.nip.io": http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/", "/console", "/api/escalations", "/metrics"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Host = host
			w := httptest.NewRecorder()
			s.handler.ServeHTTP(w, req)
			if w.Code != want {
				t.Errorf("GET %s with Host %s: %d, want %d", path, host, w.Code, want)
			}
		}
	}
	// Health answers any host (probes use IPs and service names); /metrics
	// does with web.metrics_public (see TestMetricsHostCheckWithoutAToken).
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Host = "10.0.0.7:8080"
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Errorf("/healthz with a foreign host: %d", w.Code)
	}
}

// TestServeRecordsIncidents: POST /api/incidents is served by serve's own
// wiring (the web server has the engine), behind the dashboard token.
func TestServeRecordsIncidents(t *testing.T) {
	l := startServer(t, "web:\n  dashboard_token_env: TG_DASH\n", map[string]string{"TG_DASH": dashboardToken})
	body := `{"mr":"shop/api!7","summary":"token leaked in logs","reporter":"alice"}`
	resp, _ := l.do(http.MethodPost, "/api/incidents", "", map[string]string{"Content-Type": "application/json"}, body)
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		t.Errorf("without the token: %d", resp.StatusCode)
	}
	resp, got := l.do(http.MethodPost, "/api/incidents", "", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + dashboardToken}, body)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(got, "INC-1") {
		t.Errorf("with the token: %d %s", resp.StatusCode, got)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// liveServer is a whole threatgate server running on 127.0.0.1:0 with a
// temporary data directory.
type liveServer struct {
	t    *testing.T
	s    *server
	base string
	logs *syncBuffer
}

// startServer loads configYAML (data_dir and listen are added), starts
// the server and stops it when the test ends.
func startServer(t *testing.T, configYAML string, env map[string]string) *liveServer {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "threatgate.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:0\ndata_dir: data\n"+configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
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
	logs := &syncBuffer{}
	s, err := newServer(cfg, sec, pol, db, wallClock{}, slog.New(slog.NewTextHandler(logs, nil)), extras{})
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
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("no graceful shutdown within 20s")
		}
		db.Close()
	})
	return &liveServer{t: t, s: s, base: "http://" + ln.Addr().String(), logs: logs}
}

// do sends a request to the server; host, when not "", replaces the Host
// header.
func (l *liveServer) do(method, path, host string, header map[string]string, body string) (*http.Response, string) {
	l.t.Helper()
	req, err := http.NewRequest(method, l.base+path, strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestWebhooksAnswer405ToOtherMethods(t *testing.T) {
	env := map[string]string{"THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "THREATGATE_GITLAB_STATUS_CHECK_SECRET": "hmac-secret-1", "TG_DASH": dashboardToken}
	for _, tc := range []struct {
		name, web string
	}{
		{"with a dashboard token", "web:\n  dashboard_token_env: TG_DASH\n"},
		{"without one", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startServer(t, "gitlab:\n  gate: external_status_check\n"+tc.web, env)
			for _, path := range []string{"/webhooks/gitlab", "/webhooks/gitlab/status-check"} {
				for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
					resp, _ := l.do(method, path, "", nil, "")
					if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
						t.Errorf("%s %s: %d, Allow %q; want 405, Allow: POST", method, path, resp.StatusCode, resp.Header.Get("Allow"))
					}
				}
			}
			// POST still reaches the intake.
			body := `{"object_kind":"merge_request","project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":12,"action":"open","state":"opened"}}`
			resp, _ := l.do(http.MethodPost, "/webhooks/gitlab", "", map[string]string{"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": webhookSecret}, body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("POST /webhooks/gitlab: %d, want 200", resp.StatusCode)
			}
			resp, _ = l.do(http.MethodPost, "/webhooks/gitlab/status-check", "", nil, "{}")
			if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusOK {
				t.Errorf("unsigned POST /webhooks/gitlab/status-check: %d, want a refusal by the status check", resp.StatusCode)
			}
		})
	}

	// A webhook that is not configured is a 404 for every method, never
	// the dashboard or its login.
	l := startServer(t, "gitlab:\nweb:\n  dashboard_token_env: TG_DASH\n", env)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		resp, body := l.do(method, "/webhooks/gitlab/status-check", "", nil, "")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "external_status_check") {
			t.Errorf("%s on the status check webhook with gate status: %d %q, want 404 saying why", method, resp.StatusCode, body)
		}
	}
	resp, _ := l.do(http.MethodGet, "/webhooks/gitlab", "", nil, "")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /webhooks/gitlab: %d, want 405", resp.StatusCode)
	}
	bare := startServer(t, "", nil)
	if resp, _ := bare.do(http.MethodPost, "/webhooks/gitlab", "", nil, "{}"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /webhooks/gitlab without a gitlab section: %d, want 404", resp.StatusCode)
	}
}

func TestMetricsNeedTheDashboardToken(t *testing.T) {
	env := map[string]string{"TG_DASH": dashboardToken}
	l := startServer(t, "web:\n  dashboard_token_env: TG_DASH\n", env)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"the token", map[string]string{"Authorization": "Bearer " + dashboardToken}, http.StatusOK},
	} {
		resp, body := l.do(http.MethodGet, "/metrics", "", tc.header, "")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: /metrics %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(body, "threatgate_store_up 1") {
			t.Errorf("%s: /metrics lacks threatgate_store_up:\n%s", tc.name, body)
		}
		if tc.want == http.StatusUnauthorized && (strings.Contains(body, "threatgate_") || resp.Header.Get("WWW-Authenticate") == "") {
			t.Errorf("%s: a refused /metrics showed metrics or no WWW-Authenticate", tc.name)
		}
	}
	// Guessing the token through /metrics is throttled like the login (the
	// right token above reset the count).
	for i := 0; i < 5; i++ {
		l.do(http.MethodGet, "/metrics", "", map[string]string{"Authorization": "Bearer nope"}, "")
	}
	resp, _ := l.do(http.MethodGet, "/metrics", "", map[string]string{"Authorization": "Bearer " + dashboardToken}, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("after 5 wrong tokens: /metrics %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if strings.Contains(l.logs.String(), dashboardToken) {
		t.Error("the dashboard token is in the log")
	}

	public := startServer(t, "web:\n  dashboard_token_env: TG_DASH\n  metrics_public: true\n", env)
	if resp, _ := public.do(http.MethodGet, "/metrics", "10.0.0.7:8080", nil, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("metrics_public: /metrics without the token %d, want 200", resp.StatusCode)
	}
	if resp, _ := public.do(http.MethodGet, "/api/escalations", "", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("metrics_public opened /api/escalations: %d", resp.StatusCode)
	}
}

func TestMetricsHostCheckWithoutAToken(t *testing.T) {
	l := startServer(t, "web:\n  public_url: https://tg.example.com\n", nil)
	for host, want := range map[string]int{
		"127.0.0.1:8080": 200, "localhost": 200, "[::1]:9090": 200, "tg.example.com": 200,
		"attacker.example": http.StatusMisdirectedRequest, "10.0.0.7:8080": http.StatusMisdirectedRequest,
	} {
		if resp, _ := l.do(http.MethodGet, "/metrics", host, nil, ""); resp.StatusCode != want {
			t.Errorf("/metrics with Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	if resp, _ := l.do(http.MethodGet, "/healthz", "10.0.0.7:8080", nil, ""); resp.StatusCode != 200 {
		t.Errorf("/healthz with a foreign host: %d, want 200", resp.StatusCode)
	}
	public := startServer(t, "web:\n  metrics_public: true\n", nil)
	if resp, _ := public.do(http.MethodGet, "/metrics", "10.0.0.7:8080", nil, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("metrics_public: /metrics with a foreign host %d, want 200", resp.StatusCode)
	}
	if resp, _ := public.do(http.MethodGet, "/", "10.0.0.7:8080", nil, ""); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("metrics_public opened the dashboard to a foreign host: %d", resp.StatusCode)
	}
}

// TestMetricsAreAggregate checks every series threatgate exports: labels
// say what kind of thing happened, never which escalation, MR or person,
// and the number of series does not grow with the number of escalations.
func TestMetricsAreAggregate(t *testing.T) {
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := bottest.NewClock(time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC))
	eng := bot.NewEngine(db, pol, clock, nil)
	m := newMetrics(db)
	open := func(from, to int) {
		for i := from; i < to; i++ {
			mr := &policies.MergeRequest{
				IID: int64(i), PathWithNamespace: "shop/secret-project", Title: fmt.Sprintf("Rework login %d", i), TargetBranch: "main",
				SHA: fmt.Sprintf("%040d", i), UpdatedAt: clock.Now(), Author: policies.User{Username: fmt.Sprintf("author%d", i)},
				Changes: []policies.Change{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go"}},
			}
			if _, err := eng.Handle(context.Background(), bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: mr, CommitAuthors: []string{"mallory@evil.example"}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Whatever other packages report, labels stay within known values.
	m.webhook("gitlab")("accepted")
	m.webhook("gitlab")("ESC-1 mallory")
	m.processed("Merge Request Hook", time.Second, nil)
	m.processed("ESC-2 shop/secret-project!2", time.Second, errors.New("boom"))
	m.delivered(bot.EffectStatus, nil)
	m.delivered(bot.EffectKind("ESC-3"), errors.New("boom"))

	open(1, 4)
	few := series(t, m)
	open(4, 40)
	many := series(t, m)
	if len(many) != len(few) {
		t.Errorf("%d series with 3 escalations, %d with 39: the series grow with the escalations\n%s", len(few), len(many), strings.Join(many, "\n"))
	}
	allowed := map[string]bool{"source": true, "result": true, "kind": true, "tier": true, "state": true}
	for _, s := range many {
		for _, bad := range []string{"ESC-", "secret-project", "Rework", "author", "mallory", "evil"} {
			if strings.Contains(s, bad) {
				t.Errorf("series %s names an escalation, MR or person (%q)", s, bad)
			}
		}
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "threatgate_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if !allowed[lp.GetName()] {
					t.Errorf("%s has a label %q; want only %v", mf.GetName(), lp.GetName(), allowed)
				}
			}
		}
	}
	for _, want := range []string{
		`threatgate_webhook_requests_total{result="other",source="gitlab"}`,
		`threatgate_webhook_processing_seconds_count{kind="other",result="error"}`,
		`threatgate_outbox_delivery_failures_total{kind="other"}`,
		`threatgate_escalations{state="awaiting_artifacts",tier="T2"} 39`,
	} {
		found := false
		for _, s := range many {
			found = found || strings.HasPrefix(s, want)
		}
		if !found {
			t.Errorf("no series %s", want)
		}
	}
}

// series returns threatgate's series as "name{labels} value".
func series(t *testing.T, m *metrics) []string {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "threatgate_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, lp := range mt.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			name := mf.GetName()
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			if h := mt.GetHistogram(); h != nil {
				name += "_count"
				v = float64(h.GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", name, strings.Join(ls, ","), v))
		}
	}
	return out
}

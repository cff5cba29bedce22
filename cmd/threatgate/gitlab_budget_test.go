package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot/bottest"
)

// TestConfigGitLabBudget: gitlab.max_requests_per_minute and
// gitlab.reconcile_full_every have their defaults and their bounds.
func TestConfigGitLabBudget(t *testing.T) {
	c, err := parseConfig("t.yaml", []byte("gitlab:\n  url: https://gitlab.example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.GitLab; g.RequestsPerMinute() != 600 || g.FullEvery() != time.Hour {
		t.Errorf("defaults: max_requests_per_minute %d, reconcile_full_every %s; want 600 and 1h", g.RequestsPerMinute(), g.FullEvery())
	}
	c, err = parseConfig("t.yaml", []byte("gitlab:\n  max_requests_per_minute: 1_200\n  reconcile_full_every: 6h\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.GitLab; g.MaxRequestsPerMinute != 1200 || g.ReconcileFullEvery != 6*time.Hour {
		t.Errorf("set: %d, %s; want 1200 and 6h", g.MaxRequestsPerMinute, g.ReconcileFullEvery)
	}
	for _, tt := range []struct{ src, want string }{
		{"gitlab:\n  max_requests_per_minute: 0\n", `2:28: gitlab.max_requests_per_minute: want a whole number of requests a minute such as 600, from 1 to 100000, got "0"`},
		{"gitlab:\n  max_requests_per_minute: lots\n", `2:28: gitlab.max_requests_per_minute: want a whole number of requests a minute such as 600, from 1 to 100000, got "lots"`},
		{"gitlab:\n  reconcile_full_every: 1m\n", "2:25: gitlab.reconcile_full_every: want at least reconcile_every (10m), got 1m"},
	} {
		c, err := parseConfig("t.yaml", []byte(tt.src))
		if err == nil {
			err = c.Validate()
		}
		got := problemTexts(t, err)
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%q: problems %q, want %q", tt.src, got, tt.want)
		}
	}
}

// TestServeCountsGitLabRequests: every request serve's client sends is
// counted in /metrics by method, route template and outcome; no series
// names a project, an MR or a SHA.
func TestServeCountsGitLabRequests(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Author: "ann"})
	clock := bottest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	r := startGitLabServer(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(t.TempDir(), "data")+
		"\nweb:\n  metrics_public: true\ngitlab:\n  url: "+gl.URL+"\n  max_requests_per_minute: 6000\n",
		map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret}, clock)
	ctx := context.Background()
	if _, err := r.s.client.FetchMR(ctx, "shop/api", 12); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.client.FetchMR(ctx, "shop/api", 99); err == nil {
		t.Fatal("FetchMR of a missing MR succeeded")
	}
	code, m := r.get(t, "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`threatgate_gitlab_requests_total{endpoint="/projects/:id/merge_requests/:iid",method="GET",outcome="ok"}`,
		`threatgate_gitlab_requests_total{endpoint="/projects/:id/merge_requests/:iid/diffs",method="GET",outcome="ok"}`,
		`threatgate_gitlab_requests_total{endpoint="/projects/:id/merge_requests/:iid",method="GET",outcome="not_found"}`,
		`threatgate_gitlab_requests_total{endpoint="/projects/:id/repository/commits/:sha/statuses",method="GET",outcome="ok"}`,
		"threatgate_gitlab_rate_limit_wait_seconds_total",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "threatgate_gitlab_requests_total{") && (strings.Contains(line, "shop") || strings.Contains(line, "12")) {
			t.Errorf("a series names the project or MR: %s", line)
		}
	}
}

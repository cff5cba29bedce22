package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// running is a server started by startGitLabServer.
type running struct {
	s         *server
	db        *store.DB
	base      string
	logs      *syncBuffer
	delivered chan bot.EffectKind
}

// startGitLabServer runs newServer on the config src (with env as the
// environment) and clock, on a free port, until the test ends.
func startGitLabServer(t *testing.T, src string, env map[string]string, clock bot.Clock) *running {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "threatgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, sec, _, err := loadChecked(cfgPath, envOf(env))
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
	t.Cleanup(func() { db.Close() })
	r := &running{db: db, logs: &syncBuffer{}, delivered: make(chan bot.EffectKind, 100)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.s, err = newServer(cfg, sec, pol, db, clock, log, extras{})
	if err != nil {
		t.Fatal(err)
	}
	count := r.s.dispatcher.OnResult
	r.s.dispatcher.OnResult = func(k bot.EffectKind, err error) {
		count(k, err)
		if err == nil {
			r.delivered <- k
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.s.run(ctx, ln) }()
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
	})
	r.base = "http://" + ln.Addr().String()
	return r
}

func (r *running) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
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

func (r *running) webhook(t *testing.T, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.base+"/webhooks/gitlab", strings.NewReader(body))
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", webhookSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
}

// waitDelivered waits, with a deadline, until an effect of kind went out.
func (r *running) waitDelivered(t *testing.T, kind bot.EffectKind) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case k := <-r.delivered:
			if k == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no %s effect delivered within 20s", kind)
		}
	}
}

const mrOpenHook = `{"object_kind":"merge_request","project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":12,"action":"open","state":"opened"}}`

// TestServeDryRunReadsLikeTheGateAndWritesNothing: gitlab.mode dry_run
// with a read_api token reads the MR, its diff and commits, classifies it
// exactly as the gate would (a path signal fires: the webhook alone has
// no path), shows what status it would have set on the escalation's page
// and in /api/dry-run, and sends GitLab nothing but GETs.
func TestServeDryRunReadsLikeTheGateAndWritesNothing(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.ReadAPIOnly = true
	sha := strings.Repeat("a", 40)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Title: "Rotate sessions", Author: "ann", SHA: sha, HeadPipelineID: 9,
		Diffs: []gitlabtest.Diff{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	dir := t.TempDir()
	r := startGitLabServer(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\ngitlab:\n  url: "+gl.URL+"\n  mode: dry_run\nweb:\n  dashboard_token_env: TG_DASH\n",
		map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken}, wallClock{})
	if err := r.s.checkGitLab(context.Background()); err != nil {
		t.Fatalf("checkGitLab with a read_api token: %v", err)
	}
	r.webhook(t, mrOpenHook)
	r.waitDelivered(t, bot.EffectStatus)

	esc, err := r.db.FindByMR(context.Background(), "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, f := range esc.Signals {
		fired[f.ID] = true
	}
	if !fired["auth-code"] || esc.Tier != "T2" || esc.HeadSHA != sha {
		t.Errorf("escalation: tier %q, head %s, signals %v; want T2 on %s with auth-code (a path signal: the diff was read)", esc.Tier, esc.HeadSHA, esc.Signals, sha)
	}
	if a, ok := r.s.dry.LatestStatus(esc.ID); !ok || a.Status != bot.StatusPending || a.SHA != sha {
		t.Errorf("would-have-set status = %+v, %v; want pending on %s", a, ok, sha)
	}

	// What it would have set, on the escalation's page and in the API.
	code, page := r.get(t, "/escalations/"+esc.ID, dashboardToken)
	if code != 200 || !strings.Contains(page, "Dry run: threatgate would have set threatgate/security-review to &#34;pending&#34; on "+sha[:7]) ||
		!strings.Contains(page, "nothing was written to GitLab") {
		t.Errorf("escalation page (%d) lacks the would-have-set banner:\n%s", code, page)
	}
	if code, dash := r.get(t, "/", dashboardToken); code != 200 || !strings.Contains(dash, "Dry run (gitlab.mode: dry_run)") {
		t.Errorf("dashboard (%d) lacks the dry-run banner", code)
	}
	if code, api := r.get(t, "/api/dry-run", dashboardToken); code != 200 || !strings.Contains(api, `"status": "pending"`) {
		t.Errorf("/api/dry-run (%d): %s", code, api)
	}
	if !strings.Contains(r.logs.String(), "dry run: would act on GitLab") {
		t.Errorf("the log does not say what the dry run would have done")
	}

	// A reconciliation reads again and still writes nothing.
	if code, out := postReconcile(t, r); code != 200 {
		t.Errorf("POST /api/reconcile: %d %s", code, out)
	}
	reads := map[string]bool{}
	for _, req := range gl.Requests() {
		if req.Method != http.MethodGet {
			t.Errorf("the dry run sent GitLab %s %s", req.Method, req.Path)
		}
		for _, p := range []string{"/diffs", "/commits", "/user", "/merge_requests/12"} {
			if strings.HasSuffix(req.Path, p) {
				reads[p] = true
			}
		}
	}
	if len(reads) != 4 {
		t.Errorf("the dry run read only %v; want the MR, its diffs, its commits and the token's user", reads)
	}
	if sts := gl.Statuses("shop/api", sha); len(sts) != 0 {
		t.Errorf("statuses in GitLab: %+v", sts)
	}
	if notes := gl.Notes("shop/api", 12); len(notes) != 0 {
		t.Errorf("notes in GitLab: %q", notes)
	}
	if strings.Contains(r.logs.String(), gl.Token) {
		t.Error("the token is in the log")
	}
}

func postReconcile(t *testing.T, r *running) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.base+"/api/reconcile", nil)
	req.Header.Set("Authorization", "Bearer "+dashboardToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeReadyzFollowsGitLab: /readyz is ready while GitLab answers,
// and while it has failed for at most a minute; after that it is 503 with
// the reason, until a request gets an answer again. Readiness comes from
// the client's real requests (the worker fetching an MR); the clock is
// fake.
func TestServeReadyzFollowsGitLab(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Author: "ann"})
	clock := bottest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	r := startGitLabServer(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(t.TempDir(), "data")+"\ngitlab:\n  url: "+gl.URL+"\n",
		map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret}, clock)
	if code, body := r.get(t, "/readyz", ""); code != 200 {
		t.Fatalf("/readyz = %d %s, want 200", code, body)
	}

	gl.FailNext(1000, http.StatusBadGateway, nil)
	// The client the worker and reconcile use, asking as they do.
	if _, err := r.s.client.FetchMR(context.Background(), "shop/api", 12); err == nil {
		t.Fatal("FetchMR succeeded against a failing GitLab")
	}
	if code, _ := r.get(t, "/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d right after a failure, want 200 (a minute is tolerated)", code)
	}
	clock.Advance(61 * time.Second)
	code, body := r.get(t, "/readyz", "")
	if code != 503 || !strings.Contains(body, "not ready: GitLab has not answered threatgate for 1m1s") ||
		!strings.Contains(body, "GitLab answered 502 Bad Gateway") || strings.Contains(body, "shop/api") {
		t.Errorf("/readyz = %d %q, want 503 naming GitLab and the 502, not the project", code, body)
	}
	if strings.Contains(body, gl.Token) {
		t.Error("/readyz shows the token")
	}

	// GitLab answers again: the health probe's request (GET /user) makes
	// threatgate ready at once.
	gl.ClearFaults()
	if _, err := r.s.client.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := r.get(t, "/readyz", ""); code != 200 {
		t.Errorf("/readyz = %d %q after GitLab answered, want 200", code, body)
	}
}

// TestServeStartChecksGitLab: serve asks GitLab who the token is before
// it serves, and stops on a wrong token saying where it came from, never
// what it is; without a gitlab section it says that no webhook is served.
func TestServeStartChecksGitLab(t *testing.T) {
	gl := gitlabtest.New(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "threatgate.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndata_dir: data\ngitlab:\n  url: "+gl.URL+"\n"), 0o600)
	t.Setenv("THREATGATE_GITLAB_TOKEN", "glpat-revoked-0000")
	t.Setenv("THREATGATE_GITLAB_WEBHOOK_SECRET", webhookSecret)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--config", cfg}, nil, &stdout, &stderr); code != exitFinding {
		t.Fatalf("serve with a wrong token = %d, want %d; stderr:\n%s", code, exitFinding, stderr.String())
	}
	for _, want := range []string{"refused the token (401 Unauthorized)", "the token is read from the environment variable THREATGATE_GITLAB_TOKEN"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "glpat-revoked-0000") {
		t.Error("serve printed the token")
	}

	// No gitlab section: serve starts (and stops at once: the context is
	// done) and says no webhook is served.
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndata_dir: data\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stderr.Reset()
	if code := run(ctx, []string{"serve", "--config", cfg}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("serve without gitlab = %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no gitlab section in the config: no webhook endpoint is served") {
		t.Errorf("serve without gitlab does not say that no webhook is served:\n%s", stderr.String())
	}
}

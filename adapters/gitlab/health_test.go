package gitlab

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
)

// TestCheck: GET /user at start says what is wrong with the URL or the
// token, in words an operator acts on, never repeating the token.
func TestCheck(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Sign in</body></html>"))
	}))
	defer html.Close()
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	for _, tt := range []struct {
		name        string
		setup       func(srv *gitlabtest.Server) (baseURL, token string)
		unreachable bool
		want        []string // in the message
	}{
		{"wrong token", func(srv *gitlabtest.Server) (string, string) { return srv.URL, "glpat-wrong-token-value" },
			false, []string{"refused the token (401 Unauthorized)", "wrong, expired or revoked", "gitlab.token_env"}},
		{"insufficient scope", func(srv *gitlabtest.Server) (string, string) {
			srv.Fail(gitlabtest.Fault{Path: "/user", Times: 1, Status: 403,
				Body: `{"error":"insufficient_scope","error_description":"The request requires higher privileges than provided by the access token.","scope":"api read_api"}`})
			return srv.URL, srv.Token
		}, false, []string{"403 Forbidden", "insufficient_scope", "api scope", "read_api"}},
		{"another server", func(*gitlabtest.Server) (string, string) { return other.URL + "/gitlab", gitlabtest.Token },
			false, []string{"gitlab.url " + other.URL + "/gitlab does not look like a GitLab API", "404 Not Found", "without /api/v4"}},
		{"not gitlab at all", func(*gitlabtest.Server) (string, string) { return html.URL, gitlabtest.Token },
			false, []string{"does not look like a GitLab API", "not GitLab's user JSON"}},
		{"gitlab down", func(srv *gitlabtest.Server) (string, string) {
			srv.FailPath("/user", 1, 502)
			return srv.URL, srv.Token
		},
			true, []string{"answered 502 Bad Gateway", "down"}},
		{"unreachable", func(*gitlabtest.Server) (string, string) { return goneURL, gitlabtest.Token },
			true, []string{"cannot reach GitLab at " + goneURL, "connection refused", "check gitlab.url"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := gitlabtest.New(t)
			base, token := tt.setup(srv)
			c, err := New(Config{BaseURL: base, Token: bot.Secret(token), Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			user, err := c.Check(context.Background())
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check = %q, %v; want a *CheckError", user, err)
			}
			if ce.Unreachable != tt.unreachable {
				t.Errorf("Unreachable = %v, want %v (%s)", ce.Unreachable, tt.unreachable, ce)
			}
			for _, w := range tt.want {
				if !strings.Contains(ce.Error(), w) {
					t.Errorf("Check error = %q\nwant it to contain %q", ce, w)
				}
			}
			if strings.Contains(ce.Error(), token) {
				t.Errorf("Check error repeats the token: %q", ce)
			}
		})
	}

	srv := gitlabtest.New(t)
	c, err := New(Config{BaseURL: srv.URL, Token: bot.Secret(srv.Token)})
	if err != nil {
		t.Fatal(err)
	}
	if user, err := c.Check(context.Background()); err != nil || user != gitlabtest.DefaultBotUser {
		t.Errorf("Check = %q, %v; want %q", user, err, gitlabtest.DefaultBotUser)
	}
}

// TestHealthFollowsRealRequests: readiness comes from what the client's
// own requests got. GitLab failing for a minute is tolerated; longer is
// not ready, with the reason; one answer makes it ready again. The clock
// is fake: nothing waits.
func TestHealthFollowsRealRequests(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Author: "ann"})
	clock := bottest.NewClock(t0)
	h := &Health{Clock: clock}
	c := newForgeClient(t, srv, func(cfg *Config) { cfg.Health = h })
	ctx := context.Background()
	fetch := func() error { _, err := c.FetchMR(ctx, "shop/api", 12); return err }
	ready := func(want bool, wantReason ...string) {
		t.Helper()
		ok, reason := h.Ready()
		if ok != want {
			t.Fatalf("Ready = %v (%q), want %v", ok, reason, want)
		}
		for _, w := range wantReason {
			if !strings.Contains(reason, w) {
				t.Errorf("reason = %q, want it to contain %q", reason, w)
			}
		}
		if strings.Contains(reason, srv.Token) {
			t.Errorf("reason repeats the token: %q", reason)
		}
	}

	ready(true) // nothing known yet
	if err := fetch(); err != nil {
		t.Fatal(err)
	}
	ready(true)

	srv.FailNext(2, http.StatusServiceUnavailable, nil) // the next two fetches
	if fetch() == nil {
		t.Fatal("FetchMR succeeded against a failing GitLab")
	}
	failedAt := clock.Now()
	clock.Advance(time.Minute)
	if fetch() == nil {
		t.Fatal("FetchMR succeeded against a failing GitLab")
	}
	ready(true) // a minute is tolerated
	clock.Advance(time.Second)
	ready(false, "GitLab has not answered threatgate for 1m1s", "since "+failedAt.Format(time.RFC3339),
		"GitLab answered 503 Service Unavailable", "last answered at "+t0.Format(time.RFC3339))
	if _, why := h.Ready(); strings.Contains(why, "shop/api") {
		t.Errorf("the public reason names the project: %q", why)
	}
	if !h.Failing() {
		t.Error("Failing = false while GitLab fails")
	}

	// A request its caller cancels says nothing about GitLab.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c.FetchMR(cctx, "shop/api", 12)
	ready(false)

	if err := fetch(); err != nil {
		t.Fatal(err)
	}
	ready(true)
	if h.Failing() {
		t.Error("Failing = true after GitLab answered")
	}

	// A refused token makes nothing work: it counts as a failure too.
	c2 := newForgeClient(t, srv, func(cfg *Config) { cfg.Health = h; cfg.Token = "glpat-revoked-token" })
	c2.FetchMR(ctx, "shop/api", 12)
	clock.Advance(2 * time.Minute)
	ready(false, "refuses the token (401 Unauthorized)")
}

// TestHealthUnreachableHost: no answer at all is a failure with the
// reason, never the URL's query or the token.
func TestHealthUnreachableHost(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	base := gone.URL
	gone.Close()
	clock := bottest.NewClock(t0)
	h := &Health{Clock: clock, Grace: time.Minute}
	c, err := New(Config{BaseURL: base, Token: gitlabtest.Token, Health: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(context.Background()); err == nil {
		t.Fatal("Check against a closed port succeeded")
	}
	clock.Advance(61 * time.Second)
	ok, reason := h.Ready()
	if ok || !strings.Contains(reason, "no answer: ") || !strings.Contains(reason, "connection refused") || strings.Contains(reason, "127.0.0.1") {
		t.Errorf("Ready = %v, %q; want not ready, no answer, connection refused", ok, reason)
	}
}

// TestReadOnlyClientWritesNothing: a dry run's client refuses every write
// before sending anything, and reads no gate status.
func TestReadOnlyClientWritesNothing(t *testing.T) {
	srv := gitlabtest.New(t)
	sha := strings.Repeat("c", 40)
	srv.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Author: "ann", SHA: sha, Diffs: []gitlabtest.Diff{{OldPath: "auth/x.go", NewPath: "auth/x.go", Diff: "+a\n"}}})
	c := newForgeClient(t, srv, func(cfg *Config) { cfg.ReadOnly = true })
	ctx := context.Background()
	e := bot.Effect{ID: "E1", Escalation: "ESC-1", Project: "shop/api", MRIID: 12, SHA: sha, Status: bot.StatusSuccess, Text: "x", Labels: []string{"security"}}
	for name, f := range map[string]func(context.Context, bot.Effect) error{"SetStatus": c.SetStatus, "PostNote": c.PostNote, "AddLabels": c.AddLabels} {
		err := f(ctx, e)
		var de *bot.DeliveryError
		if !errors.As(err, &de) || !de.Permanent || !strings.Contains(err.Error(), "read only") {
			t.Errorf("%s = %v, want a permanent refusal naming the read-only client", name, err)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the refused writes sent %d requests: %+v", n, srv.Requests())
	}
	mi, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Status != nil || len(mi.MR.Changes) != 1 {
		t.Errorf("FetchMR: Status = %+v (want nil), %d changes (want 1)", mi.Status, len(mi.MR.Changes))
	}
	for _, r := range srv.Requests() {
		if r.Method != http.MethodGet || strings.Contains(r.Path, "statuses") {
			t.Errorf("a read-only fetch sent %s %s", r.Method, r.Path)
		}
	}
}

package gitlab

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// t0 is the clock of clients under test.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// syncBuffer is a log sink that tests read after the client wrote to it.
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

// newForgeClient returns a Client for srv whose clock stands at t0. Its
// log is checked for the token when the test ends.
func newForgeClient(t *testing.T, srv *gitlabtest.Server, mod ...func(*Config)) *Client {
	t.Helper()
	var logs syncBuffer
	cfg := Config{
		BaseURL:      srv.URL,
		Token:        bot.Secret(srv.Token),
		DashboardURL: "https://tg.example.com/",
		Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.now = func() time.Time { return t0 }
	t.Cleanup(func() {
		if strings.Contains(logs.String(), srv.Token) {
			t.Errorf("the token appears in the log:\n%s", logs.String())
		}
	})
	return c
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

func retryAfterOf(err error) (time.Duration, bool) {
	// Every error is a *bot.DeliveryError, whose RetryAfter is 0 when
	// GitLab named no wait.
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) && r.RetryAfter() > 0 {
		return r.RetryAfter(), true
	}
	return 0, false
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // in the error; "" = accepted
	}{
		{"ok", Config{BaseURL: "https://gitlab.example.com", Token: "tok"}, ""},
		{"ok with path", Config{BaseURL: "https://example.com/gitlab/", Token: "tok"}, ""},
		{"no url", Config{Token: "tok"}, "base URL is empty"},
		{"no scheme", Config{BaseURL: "gitlab.example.com", Token: "tok"}, "want the GitLab URL"},
		{"credentials", Config{BaseURL: "https://root:hunter2@gitlab.example.com", Token: "tok"}, "user name or password"},
		{"query", Config{BaseURL: "https://gitlab.example.com/?private_token=x", Token: "tok"}, "query"},
		{"no token", Config{BaseURL: "https://gitlab.example.com"}, "token is empty"},
		{"gate", Config{BaseURL: "https://gitlab.example.com", Token: "tok", Gate: "approval"}, `want "status" or "external_status_check"`},
		{"dashboard", Config{BaseURL: "https://gitlab.example.com", Token: "tok", DashboardURL: "ftp://x"}, "dashboard URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if c.cfg.StatusName != DefaultStatusName || c.cfg.StatusCheckName != DefaultStatusName || c.cfg.Gate != GateStatus {
					t.Errorf("defaults = %q %q %q", c.cfg.StatusName, c.cfg.StatusCheckName, c.cfg.Gate)
				}
				if c.cfg.HTTPClient.Timeout != 10*time.Second {
					t.Errorf("HTTP timeout = %v, want 10s", c.cfg.HTTPClient.Timeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "private_token") {
				t.Errorf("error repeats a credential: %v", err)
			}
		})
	}
}

func TestNewSetsTimeoutOnGivenClient(t *testing.T) {
	hc := &http.Client{}
	if _, err := New(Config{BaseURL: "https://gitlab.example.com", Token: "tok", HTTPClient: hc, Timeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if hc.Timeout != 3*time.Second {
		t.Errorf("Timeout = %v, want 3s", hc.Timeout)
	}
}

func seedShop(srv *gitlabtest.Server) {
	srv.AddMR(gitlabtest.MR{Project: "shop/api", ProjectID: 7, IID: 12, Title: "Add login", Author: "ann",
		SHA: "abc1234000000000000000000000000000000000", HeadPipelineID: 501})
}

func TestErrors(t *testing.T) {
	note := bot.Effect{ID: "eff-1", Kind: bot.EffectMRNote, Project: "shop/api", MRIID: 12, Text: "hello"}
	status := bot.Effect{ID: "eff-2", Kind: bot.EffectStatus, Project: "shop/api", MRIID: 12,
		SHA: "abc1234000000000000000000000000000000000", Status: bot.StatusPending, Text: "waiting"}

	t.Run("429 waits until RateLimit-Reset", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		srv.FailNext(1, http.StatusTooManyRequests, http.Header{"RateLimit-Reset": {strconv.FormatInt(t0.Add(42*time.Second).Unix(), 10)}})
		err := c.PostNote(context.Background(), note)
		var rl *RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("err = %v, want *RateLimitError", err)
		}
		if d, ok := retryAfterOf(err); !ok || d != 42*time.Second {
			t.Errorf("RetryAfter = %v, want 42s", d)
		}
		if isPermanent(err) {
			t.Error("a 429 is not permanent")
		}
		if !strings.HasPrefix(err.Error(), "post note on shop/api!12: ") {
			t.Errorf("err = %q, want it to name the operation", err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("requests = %d, want 1: client-go must not retry a 429", n)
		}
	})

	t.Run("500 is retryable and not retried by the client", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		srv.FailNext(1, http.StatusInternalServerError, nil)
		err := c.SetStatus(context.Background(), status)
		if err == nil || isPermanent(err) {
			t.Fatalf("err = %v, want a retryable error", err)
		}
		if _, ok := retryAfterOf(err); ok {
			t.Errorf("a 500 carries no RetryAfter: %v", err)
		}
		if !strings.Contains(err.Error(), "set status on shop/api@abc1234") || !strings.Contains(err.Error(), "500") {
			t.Errorf("err = %q", err)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("requests = %d, want exactly 1", n)
		}
	})

	t.Run("POST 502 is not retried either", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		srv.Fail(gitlabtest.Fault{Method: http.MethodPost, Path: "/notes", Times: 5, Status: http.StatusBadGateway})
		if err := c.PostNote(context.Background(), note); err == nil || isPermanent(err) {
			t.Fatalf("err = %v, want retryable", err)
		}
		posts := 0
		for _, r := range srv.Requests() {
			if r.Method == http.MethodPost {
				posts++
			}
		}
		if posts != 1 {
			t.Errorf("POSTs = %d, want 1", posts)
		}
	})

	t.Run("404 is permanent with a hint", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		e := note
		e.Project = "shop/nope"
		err := c.PostNote(context.Background(), e)
		if !isPermanent(err) {
			t.Fatalf("err = %v, want permanent", err)
		}
		want := "post note on shop/nope!12: list notes: GitLab answered 404 Not Found; project or MR not found, or the token cannot see it"
		if err.Error() != want {
			t.Errorf("err =\n %q\nwant\n %q", err, want)
		}
	})

	t.Run("401 is permanent and names the token", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv, func(cfg *Config) { cfg.Token = "glpat-wrong-token-value" })
		_, err := c.FetchMR(context.Background(), "shop/api", 12)
		if !isPermanent(err) || !strings.Contains(err.Error(), "check the token and its scopes (api)") {
			t.Fatalf("err = %v, want permanent naming the token's scopes", err)
		}
		if strings.Contains(err.Error(), "glpat-wrong-token-value") {
			t.Errorf("err repeats the token: %v", err)
		}
	})

	t.Run("403 and 422 are permanent", func(t *testing.T) {
		for _, code := range []int{http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity} {
			srv := gitlabtest.New(t)
			seedShop(srv)
			c := newForgeClient(t, srv)
			srv.FailNext(1, code, nil)
			if err := c.AddLabels(context.Background(), bot.Effect{Project: "shop/api", MRIID: 12, Labels: []string{"x"}}); !isPermanent(err) {
				t.Errorf("%d: err = %v, want permanent", code, err)
			}
		}
	})

	t.Run("timeout is retryable", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
		srv.Fail(gitlabtest.Fault{Times: 1, Hang: true})
		_, err := c.FetchMR(context.Background(), "shop/api", 12)
		if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "Timeout") {
			t.Fatalf("err = %v, want a retryable timeout", err)
		}
		if _, err := c.FetchMR(context.Background(), "shop/api", 12); err != nil {
			t.Fatalf("after the timeout: %v", err)
		}
	})

	t.Run("connection refused and cancelled context are retryable", func(t *testing.T) {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.PostNote(ctx, note)
		if err == nil || isPermanent(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: err = %v, want retryable wrapping context.Canceled", err)
		}
		srv.Close()
		err = c.PostNote(context.Background(), note)
		if err == nil || isPermanent(err) {
			t.Errorf("closed server: err = %v, want retryable", err)
		}
		if !strings.HasPrefix(err.Error(), "post note on shop/api!12: list notes: GitLab did not answer: ") {
			t.Errorf("err = %q", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"reset unix", http.Header{"Ratelimit-Reset": {strconv.FormatInt(t0.Add(90*time.Second).Unix(), 10)}}, 90 * time.Second},
		{"reset delta", http.Header{"Ratelimit-Reset": {"15"}}, 15 * time.Second},
		{"reset wins over retry-after", http.Header{"Ratelimit-Reset": {strconv.FormatInt(t0.Add(5*time.Second).Unix(), 10)}, "Retry-After": {"30"}}, 5 * time.Second},
		{"reset past, retry-after", http.Header{"Ratelimit-Reset": {strconv.FormatInt(t0.Add(-5*time.Second).Unix(), 10)}, "Retry-After": {"30"}}, 30 * time.Second},
		{"reset past alone", http.Header{"Ratelimit-Reset": {strconv.FormatInt(t0.Add(-5*time.Second).Unix(), 10)}}, time.Second},
		{"retry-after seconds", http.Header{"Retry-After": {"20"}}, 20 * time.Second},
		{"retry-after date", http.Header{"Retry-After": {t0.Add(2 * time.Minute).Format(http.TimeFormat)}}, 2 * time.Minute},
		{"none", http.Header{}, 60 * time.Second},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 60 * time.Second},
		{"capped", http.Header{"Retry-After": {"86400"}}, time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.h, t0); got != tt.want {
				t.Errorf("retryAfter = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTokenNeverInErrors drives every failure mode, including a server
// that echoes the token, and checks no error repeats it.
func TestTokenNeverInErrors(t *testing.T) {
	srv := gitlabtest.New(t)
	seedShop(srv)
	c := newForgeClient(t, srv)
	ctx := context.Background()
	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Fatal("want an error")
		}
		errs = append(errs, err)
	}
	e := bot.Effect{ID: "x", Project: "shop/api", MRIID: 12, SHA: "abc1234000000000000000000000000000000000", Status: bot.StatusSuccess, Text: "t", Labels: []string{"a"}}
	for _, code := range []int{400, 401, 403, 409, 422, 429, 500, 503} {
		srv.Fail(gitlabtest.Fault{Times: 1, Status: code, Body: `{"message":"bad token ` + srv.Token + `"}`})
		collect(c.SetStatus(ctx, e))
		srv.FailNext(1, code, nil)
		collect(c.PostNote(ctx, e))
		srv.FailNext(1, code, nil)
		collect(c.AddLabels(ctx, e))
		srv.FailNext(1, code, nil)
		_, err := c.FetchMR(ctx, "shop/api", 12)
		collect(err)
	}
	_, err := c.FetchMR(ctx, "shop/missing", 1)
	collect(err)
	srv.Close()
	_, err = c.FetchMR(ctx, "shop/api", 12)
	collect(err)
	for _, err := range errs {
		if strings.Contains(err.Error(), srv.Token) {
			t.Errorf("error repeats the token: %v", err)
		}
	}
}

func TestParseMRURL(t *testing.T) {
	for _, tt := range []struct {
		in      string
		base    string
		project string
		iid     int64
		err     string
	}{
		{in: "https://gitlab.example.com/group/sub/proj/-/merge_requests/12", base: "https://gitlab.example.com", project: "group/sub/proj", iid: 12},
		{in: "http://gitlab.local:8080/g/p/-/merge_requests/7/diffs?view=inline#note_3", base: "http://gitlab.local:8080", project: "g/p", iid: 7},
		{in: " https://gitlab.example.com/g/p.x_y-z/-/merge_requests/1 ", base: "https://gitlab.example.com", project: "g/p.x_y-z", iid: 1},
		{in: "https://gitlab.example.com/g/p/merge_requests/12", err: "want a merge request URL such as"},
		{in: "https://gitlab.example.com/p/-/merge_requests/12", err: "with its group"},
		{in: "https://gitlab.example.com/g/p/-/merge_requests/0", err: "positive merge request number"},
		{in: "https://gitlab.example.com/g/p/-/merge_requests/abc", err: "positive merge request number"},
		{in: "https://gitlab.example.com/g/../p/-/merge_requests/3", err: "project path"},
		{in: "https://root:hunter2@gitlab.example.com/g/p/-/merge_requests/3", err: "remove the user name and password"},
		{in: "ftp://gitlab.example.com/g/p/-/merge_requests/3", err: "want a merge request URL"},
		{in: "g/p!12", err: "want a merge request URL"},
		{in: "", err: "want a merge request URL"},
		// One parser for MR URLs (the command grammar's): a credential in
		// the query is refused, and not repeated.
		{in: "https://gitlab.example.com/g/p/-/merge_requests/3?private_token=hunter2", err: "remove the token"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			base, project, iid, err := ParseMRURL(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if _, ok := bot.IsProblem(err); !ok {
					t.Errorf("err is %T, want *bot.Problem", err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("err repeats a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if base != tt.base || project != tt.project || iid != tt.iid {
				t.Errorf("got %q %q %d, want %q %q %d", base, project, iid, tt.base, tt.project, tt.iid)
			}
		})
	}
}

func FuzzParseMRURL(f *testing.F) {
	f.Add("https://gitlab.example.com/group/sub/proj/-/merge_requests/12")
	f.Add("http://h:1/g/p/-/merge_requests/9/diffs#x")
	f.Add("https://u:p@h/g/p/-/merge_requests/1")
	f.Add("https://h/g/p/-/merge_requests/-1")
	f.Fuzz(func(t *testing.T, s string) {
		base, project, iid, err := ParseMRURL(s)
		if err != nil {
			if _, ok := bot.IsProblem(err); !ok {
				t.Fatalf("err is %T, want *bot.Problem", err)
			}
			return
		}
		if base == "" || !validProjectPath(project) || iid <= 0 {
			t.Fatalf("accepted %q as %q %q %d", s, base, project, iid)
		}
	})
}

func TestLRU(t *testing.T) {
	l := newLRU(2, 1<<20)
	l.put("a", fetched{authors: []string{"a"}})
	l.put("b", fetched{authors: []string{"b"}})
	l.get("a") // a is now the most recent
	l.put("c", fetched{authors: []string{"c"}})
	if _, ok := l.get("b"); ok {
		t.Error("b should have been evicted")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := l.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if l.len() != 2 {
		t.Errorf("len = %d, want 2", l.len())
	}

	// Bytes bound the cache too; an entry too large is not kept.
	l = newLRU(10, 4000)
	big := func(n int) fetched { return fetched{changes: []policies.Change{{Diff: strings.Repeat("x", n)}}} }
	l.put("huge", big(2000))
	if _, ok := l.get("huge"); ok {
		t.Error("an entry over a quarter of the budget was kept")
	}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		l.put(k, big(900)) // 964 bytes each
	}
	if _, ok := l.get("a"); ok || l.len() != 4 || l.bytes != 4*964 {
		t.Errorf("len %d, bytes %d: want the oldest evicted to stay within 4000 bytes", l.len(), l.bytes)
	}
	l.put("e", big(10))
	if l.len() != 4 || l.bytes != 3*964+74 {
		t.Errorf("replacing an entry: len %d, bytes %d", l.len(), l.bytes)
	}
}

// TestErrorsAreDeliveryErrors: the client speaks the dispatcher's one error
// type; what GitLab answered is inside it.
func TestErrorsAreDeliveryErrors(t *testing.T) {
	for code, want := range map[int]struct {
		permanent bool
		wait      bool
	}{http.StatusForbidden: {true, false}, http.StatusTooManyRequests: {false, true}, http.StatusBadGateway: {false, false}} {
		srv := gitlabtest.New(t)
		seedShop(srv)
		c := newForgeClient(t, srv)
		hdr := http.Header{}
		if code == http.StatusTooManyRequests {
			hdr.Set("Retry-After", "30")
			hdr.Set("RateLimit-Reset", strconv.FormatInt(time.Now().Add(30*time.Second).Unix(), 10))
		}
		srv.FailNext(1, code, hdr)
		err := c.SetStatus(context.Background(), bot.Effect{ID: "fx", Kind: bot.EffectStatus, Project: "shop/api", MRIID: 12, SHA: "abc1234000000000000000000000000000000000", Status: bot.StatusPending})
		var de *bot.DeliveryError
		if !errors.As(err, &de) || de.Permanent != want.permanent || (de.After > 0) != want.wait {
			t.Errorf("%d: err = %#v, want a DeliveryError permanent=%v wait=%v", code, err, want.permanent, want.wait)
		}
	}
}

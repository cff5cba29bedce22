package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// fakeTime is a clock whose sleeps move it: a Limiter under test waits
// without sleeping, and the test reads how long it was asked to wait.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return ctx.Err()
}

func (f *fakeTime) slept() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t time.Duration
	for _, d := range f.sleeps {
		t += d
	}
	return t
}

func newFakeTime() *fakeTime { return &fakeTime{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)} }

func TestLimiterKeepsUnderTheRate(t *testing.T) {
	ft := newFakeTime()
	l := NewLimiter(600, ft.Now, ft.Sleep)
	ctx := context.Background()
	start := ft.Now()
	// 600 a minute: a burst of 60 goes at once, then one every 100ms.
	for i := 0; i < 1200; i++ {
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	el := ft.Now().Sub(start)
	// 1,200 requests at 600/min: at least 1,140 intervals of 100ms.
	if el < 114*time.Second || el > 115*time.Second {
		t.Errorf("1200 requests at 600/min took %s of (fake) time, want about 114s", el)
	}
	if l.Waited() != ft.slept() {
		t.Errorf("Waited = %s, slept %s", l.Waited(), ft.slept())
	}
}

func TestLimiterBurstThenSpacing(t *testing.T) {
	ft := newFakeTime()
	l := NewLimiter(60, ft.Now, ft.Sleep) // burst 6, then one a second
	for i := 0; i < 6; i++ {
		l.Wait(context.Background())
	}
	if s := ft.slept(); s != 0 {
		t.Errorf("the burst waited %s, want 0", s)
	}
	l.Wait(context.Background())
	if s := ft.slept(); s != time.Second {
		t.Errorf("the 7th request waited %s, want 1s", s)
	}
	// A quiet minute refills the bucket.
	ft.now = ft.now.Add(time.Minute)
	before := ft.slept()
	for i := 0; i < 6; i++ {
		l.Wait(context.Background())
	}
	if s := ft.slept() - before; s != 0 {
		t.Errorf("after a quiet minute the burst waited %s, want 0", s)
	}
}

func TestLimiterWaitsAfter429(t *testing.T) {
	ft := newFakeTime()
	l := NewLimiter(600, ft.Now, ft.Sleep)
	h := http.Header{}
	h.Set("Retry-After", "42")
	l.Observe(http.StatusTooManyRequests, h)
	l.Wait(context.Background())
	if s := ft.slept(); s != 42*time.Second {
		t.Errorf("after a 429 with Retry-After: 42 the next request waited %s, want 42s", s)
	}

	// RateLimit-Reset (Unix time) without Retry-After.
	ft2 := newFakeTime()
	l2 := NewLimiter(600, ft2.Now, ft2.Sleep)
	h2 := http.Header{}
	h2.Set("RateLimit-Reset", strconv.FormatInt(ft2.now.Add(17*time.Second).Unix(), 10))
	l2.Observe(http.StatusTooManyRequests, h2)
	l2.Wait(context.Background())
	if s := ft2.slept(); s != 17*time.Second {
		t.Errorf("after a 429 with RateLimit-Reset 17s ahead the next request waited %s, want 17s", s)
	}
}

func TestLimiterSlowsDownAsRemainingNearsZero(t *testing.T) {
	ft := newFakeTime()
	l := NewLimiter(600, ft.Now, ft.Sleep)
	h := http.Header{}
	h.Set("RateLimit-Limit", "2000")
	h.Set("RateLimit-Remaining", "9")
	h.Set("RateLimit-Reset", strconv.FormatInt(ft.now.Add(50*time.Second).Unix(), 10))
	l.Observe(http.StatusOK, h)
	l.Wait(context.Background()) // the first one goes
	for i := 0; i < 3; i++ {
		l.Wait(context.Background())
	}
	// 9 left for 50s: one every 5s.
	if s := ft.slept(); s != 15*time.Second {
		t.Errorf("3 requests with 9 of 2000 left for 50s waited %s, want 15s", s)
	}

	// Zero remaining: nothing until the reset.
	ft2 := newFakeTime()
	l2 := NewLimiter(600, ft2.Now, ft2.Sleep)
	h.Set("RateLimit-Remaining", "0")
	h.Set("RateLimit-Reset", strconv.FormatInt(ft2.now.Add(30*time.Second).Unix(), 10))
	l2.Observe(http.StatusOK, h)
	l2.Wait(context.Background())
	if s := ft2.slept(); s != 30*time.Second {
		t.Errorf("with 0 remaining the next request waited %s, want 30s (until the reset)", s)
	}

	// Plenty remaining: no slowdown.
	ft3 := newFakeTime()
	l3 := NewLimiter(600, ft3.Now, ft3.Sleep)
	h.Set("RateLimit-Remaining", "1500")
	l3.Observe(http.StatusOK, h)
	for i := 0; i < 10; i++ {
		l3.Wait(context.Background())
	}
	if s := ft3.slept(); s != 0 {
		t.Errorf("with 1500 remaining 10 requests waited %s, want 0", s)
	}
}

func TestLimiterHoldIsBounded(t *testing.T) {
	ft := newFakeTime()
	l := NewLimiter(600, ft.Now, ft.Sleep)
	h := http.Header{}
	h.Set("Retry-After", "86400")
	l.Observe(http.StatusTooManyRequests, h)
	l.Wait(context.Background())
	if s := ft.slept(); s > maxHold {
		t.Errorf("a Retry-After of a day held requests %s, want at most %s", s, maxHold)
	}
}

func TestLimiterStopsWithContext(t *testing.T) {
	l := NewLimiter(1, nil, nil) // the real sleep: the context ends it
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Wait(context.Background()) // the burst of 1
	if err := l.Wait(ctx); err == nil {
		t.Error("Wait with a cancelled context returned nil")
	}
}

func TestRoute(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"/api/v4/user", "/user"},
		{"/api/v4/users", "/users"},
		{"/api/v4/projects/shop%2Fapi/merge_requests", "/projects/:id/merge_requests"},
		{"/api/v4/projects/shop%2Fapi/merge_requests/12", "/projects/:id/merge_requests/:iid"},
		{"/api/v4/projects/7/merge_requests/12/diffs", "/projects/:id/merge_requests/:iid/diffs"},
		{"/api/v4/projects/diffs/merge_requests/12/commits", "/projects/:id/merge_requests/:iid/commits"},
		{"/api/v4/projects/7/merge_requests/12/notes/99", "/projects/:id/merge_requests/:iid/notes/:note_id"},
		{"/api/v4/projects/7/repository/commits/0123abcd/statuses", "/projects/:id/repository/commits/:sha/statuses"},
		{"/api/v4/projects/7/statuses/0123abcd", "/projects/:id/statuses/:sha"},
		{"/api/v4/projects/7/pipelines", "/projects/:id/pipelines"},
		{"/gitlab/api/v4/projects/7/pipelines", "/projects/:id/pipelines"},
		{"/api/v4/projects/7/secret-thing/ann", "/projects/:id/:param/:param"},
		{"/api/v4/a/b/c/d/e/f/g/h/i/j", "/:param/:param/:param/:param/:param/:param/:param/:param/..."},
	} {
		if got := Route(c.path); got != c.want {
			t.Errorf("Route(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

// TestClientMetersAndLimitsEveryRequest: every request of a real
// client-go client against the fake is counted by route and outcome,
// and a 429 makes the next request wait (on the injected clock) instead
// of hammering GitLab.
func TestClientMetersAndLimitsEveryRequest(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Author: "ann"})
	ft := newFakeTime()
	var mu sync.Mutex
	seen := map[string]int{}
	c, err := New(Config{BaseURL: srv.URL, Token: bot.Secret(gitlabtest.Token),
		Limiter: NewLimiter(600, ft.Now, ft.Sleep),
		OnRequest: func(method, route, outcome string) {
			mu.Lock()
			defer mu.Unlock()
			seen[fmt.Sprintf("%s %s %s", method, route, outcome)]++
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.FetchMR(ctx, "shop/api", 12); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Retry-After", "20")
	srv.Fail(gitlabtest.Fault{Path: "/merge_requests/12", Times: 1, Status: 429, Header: h})
	if _, err := c.FetchMR(ctx, "shop/api", 12); err == nil {
		t.Fatal("FetchMR after a 429 succeeded")
	}
	if _, err := c.FetchMR(ctx, "shop/api", 99); err == nil {
		t.Fatal("FetchMR of a missing MR succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{
		"GET /projects/:id/merge_requests/:iid ok",
		"GET /projects/:id/merge_requests/:iid/diffs ok",
		"GET /projects/:id/merge_requests/:iid/commits ok",
		"GET /projects/:id/repository/commits/:sha/statuses ok",
		"GET /projects/:id/merge_requests/:iid rate_limited",
		"GET /projects/:id/merge_requests/:iid not_found",
	} {
		if seen[want] == 0 {
			t.Errorf("no request counted as %q; counted %v", want, seen)
		}
	}
	for k := range seen {
		if strings.Contains(k, "shop") || strings.Contains(k, "12") {
			t.Errorf("a route carries an id or path: %q", k)
		}
	}
	if s := ft.slept(); s != 20*time.Second {
		t.Errorf("the request after the 429 waited %s, want 20s", s)
	}
}

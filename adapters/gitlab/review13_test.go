package gitlab

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
)

// TestReview13RedirectsDoNotCarryTheToken: a GitLab (or a proxy in
// front of it) that answers with a redirect to another host must not get
// threatgate's token sent there. net/http follows redirects and copies
// every header but Authorization and Cookie, so client-go's PRIVATE-TOKEN
// header went along: to the start check's GET /user, to every read, and
// (307/308) to writes with their bodies.
func TestReview13RedirectsDoNotCarryTheToken(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if tok := r.Header.Get("PRIVATE-TOKEN"); tok != "" {
			leaked = append(leaked, r.Method+" "+r.URL.Path+": "+tok)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id": 1, "username": "someone"}`))
	}))
	defer elsewhere.Close()
	// Another host name for the same listener: 127.0.0.1 → localhost.
	other := strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer front.Close()

	health := &Health{Clock: bottest.NewClock(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))}
	c, err := New(Config{BaseURL: front.URL, Token: bot.Secret(gitlabtest.Token), Timeout: 5 * time.Second, Health: health})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	user, cerr := c.Check(ctx)
	c.FetchMR(ctx, "shop/api", 1)
	c.SetStatus(ctx, bot.Effect{Kind: bot.EffectStatus, Project: "shop/api", MRIID: 1, SHA: "abc123", Status: bot.StatusSuccess, Text: "ok"})
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Errorf("the token went to another host through GitLab's redirects (start check answered %q, %v):\n%s", user, cerr, strings.Join(leaked, "\n"))
	}
	if cerr == nil {
		t.Errorf("the start check passed on a redirect to another host (user %q); want it refused as not a GitLab API", user)
	}
}

// TestReview13ReadyWhileNoGateCanBeSet: in enforce mode with a token
// GitLab refuses every write to (read_api, or a user demoted to
// Reporter), every status is answered 403 and retried for ever: no MR is
// gated. The start check passes (documented), and Health counts each 403
// as GitLab answering, so /readyz says ready for as long as it lasts.
func TestReview13ReadyWhileNoGateCanBeSet(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.ReadAPIOnly = true
	sha := strings.Repeat("b", 40)
	srv.AddMR(gitlabtest.MR{Project: "shop/api", IID: 3, Author: "ann", SHA: sha})
	clock := bottest.NewClock(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	health := &Health{Clock: clock}
	c, err := New(Config{BaseURL: srv.URL, Token: bot.Secret(srv.Token), Timeout: 5 * time.Second, Health: health})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.SetStatus(ctx, bot.Effect{Kind: bot.EffectStatus, Project: "shop/api", MRIID: 3, SHA: sha, Status: bot.StatusPending, Text: "ESC-1 T2"}); err == nil {
			t.Fatal("a read_api token set a status")
		}
		clock.Advance(5 * time.Minute)
	}
	if ok, _ := health.Ready(); ok {
		t.Errorf("ready after 15 minutes in which every gate status was refused (403): nothing is gated")
	}
}

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

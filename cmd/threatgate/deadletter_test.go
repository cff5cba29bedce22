package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// panicking is a worker Handler whose every input panics.
type panicking struct{}

func (panicking) Handle(context.Context, bot.Input) (bot.Reply, error) {
	var m map[string]int
	m["poison"]++
	return bot.Reply{}, nil
}

func (panicking) Answer(context.Context, bot.Answer) error { return nil }

// TestDeadLettersThroughServeWiring: with serve's wiring, a webhook whose
// processing panics is set aside in the store (Worker.DeadLetters), and
// the dashboard and /metrics show it.
func TestDeadLettersThroughServeWiring(t *testing.T) {
	ctx := context.Background()
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
	s, err := newServer(DefaultConfig(), Secrets{}, pol, db, clock, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:8080"
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, w.Code)
		}
		return w.Body.String()
	}
	if m := get("/metrics"); !strings.Contains(m, "\nthreatgate_dead_letters 0\n") {
		t.Errorf("/metrics lacks threatgate_dead_letters 0:\n%s", m)
	}
	if page := get("/"); strings.Contains(page, `id="set-aside"`) {
		t.Error("the dashboard shows a Set aside section with nothing set aside")
	}

	body := `{"object_kind":"merge_request","project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":4,"action":"open"}}`
	if _, err := db.Enqueue(ctx, "uuid-poison", gitlab.EventMergeRequest, []byte(body), clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.worker.Engine = panicking{}
	if n, err := s.worker.ProcessDue(ctx); n != 1 || err != nil {
		t.Fatalf("ProcessDue = %d, %v; want the poison set aside", n, err)
	}
	if d, _ := db.InboxDepth(ctx); d != 0 {
		t.Errorf("inbox depth = %d, want 0: the poison must not replay", d)
	}
	if m := get("/metrics"); !strings.Contains(m, "\nthreatgate_dead_letters 1\n") {
		t.Errorf("/metrics lacks threatgate_dead_letters 1:\n%s", m)
	}
	page := get("/")
	if !strings.Contains(page, `id="set-aside"`) || !strings.Contains(page, "assignment to entry in nil map") {
		t.Errorf("the dashboard does not show the item set aside:\n%s", page)
	}
}

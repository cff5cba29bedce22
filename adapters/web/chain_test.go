package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// TestEscalationPageChecksChainFromCheckpoint: the page reads only the
// events written since the last check, and an event written after the
// checkpoint and then changed is shown broken on every page, every time.
func TestEscalationPageChecksChainFromCheckpoint(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	n, err := s.db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, s.get("/escalations/ESC-1"))
	wantContains(t, page, `class="chain ok"`, "Audit chain verified: "+strconv.Itoa(n)+" events",
		strconv.Itoa(n)+" written since the last check were read now", "Chain verified up to event "+strconv.Itoa(n))
	page = body(t, s.get("/escalations/ESC-4"))
	wantContains(t, page, "Audit chain verified: "+strconv.Itoa(n)+" events", "0 written since the last check were read now")

	// A push on ESC-1 writes events after the checkpoint.
	s.handle(s.mr(1, "ccc999ccc999", hostileTitle, bot.MRUpdate, "internal/auth/session.go"))
	m, err := s.db.Verify(context.Background())
	if err != nil || m <= n {
		t.Fatalf("Verify = %d, %v; want more than %d events", m, err, n)
	}
	// They are changed outside threatgate before any page checked them.
	s.tamper(uint64(n+1), "ccc999ccc999", "ddd000ddd000")
	for _, id := range []string{"ESC-1", "ESC-4", "ESC-1"} {
		res := s.get("/escalations/" + id)
		wantStatus(t, res, http.StatusOK)
		page := body(t, res)
		wantContains(t, page, `class="chain broken" role="alert"`, "Audit chain broken.",
			fmt.Sprintf("event %d: hash does not match its content", n+1))
		wantNotContains(t, page, "Audit chain verified")
	}
}

// TestEscalationPageWithoutCheckpoint: a Reader that cannot check from a
// checkpoint (a wrapper) gets the full walk, and the page says so.
func TestEscalationPageWithoutCheckpoint(t *testing.T) {
	s := newDashSite(t, withReader(func(r web.Reader) web.Reader { return fullWalk{r} }))
	s.seed()
	n, _ := s.db.Verify(context.Background())
	page := body(t, s.get("/escalations/ESC-1"))
	wantContains(t, page, "Audit chain verified: "+strconv.Itoa(n)+" events", "Chain verified: "+strconv.Itoa(n)+" events in the whole log.")
	wantNotContains(t, page, "since the last check")
}

// fullWalk hides the store's VerifyFrom: the page verifies the whole log,
// as it did before the checkpoint.
type fullWalk struct{ web.Reader }

// BenchmarkEscalationPageChain serves one escalation page of a store
// holding 1,000 or 100,000 events: "full" verifies the whole log as every
// page did before the checkpoint; "checkpoint" checks from the store's
// checkpoint with nothing new since the last page, "checkpoint+1" with
// one event committed before each page (outside the timing), so that the
// page checks it and saves the new checkpoint (with fsync). Every page is
// verified OK.
func BenchmarkEscalationPageChain(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		db, serve := chainSite(b, n)
		for _, mode := range []string{"full", "checkpoint", "checkpoint+1"} {
			b.Run(fmt.Sprintf("events=%d/%s", n, mode), func(b *testing.B) {
				var r web.Reader = db
				if mode == "full" {
					r = fullWalk{db}
				}
				h := serve(r).Handler()
				page := func() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/escalations/ESC-1", nil))
					if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Audit chain verified") {
						b.Fatalf("page: %d %.300s", w.Code, w.Body.String())
					}
				}
				page() // the first page after the log was written checks it all
				i := 0
				for b.Loop() {
					if mode == "checkpoint+1" {
						b.StopTimer()
						i++
						fillChain(b, db, 1, time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Second))
						b.StartTimer()
					}
					page()
				}
			})
		}
	}
}

// chainSite makes a store with ESC-1 and n events in all, most of them
// about 1,000 other escalations, and returns it with a function that
// makes a server reading through r.
func chainSite(b *testing.B, n int) (*store.DB, func(r web.Reader) *web.Server) {
	b.Helper()
	pol, err := policies.Load("dash.yaml", []byte(dashPolicy))
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(b.TempDir()) // fsync, as in production: a page that moves the checkpoint writes
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	at := time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC)
	ev := bot.Event{
		Kind: bot.EventOpened, Actor: "system", At: at, SHA: "aaa111aaa111",
		Data: bot.EventData{Project: "shop/api", MRIID: 1, Author: "ann", Tier: "T2", DecisionDue: at.Add(24 * time.Hour), To: bot.StateInReview},
	}
	if _, err := db.Commit(context.Background(), &bot.Commit{Escalation: bot.Replay([]bot.Event{ev}), Events: []bot.Event{ev}, At: at}); err != nil {
		b.Fatal(err)
	}
	for left := n - 1; left > 0; left -= 1000 {
		fillChain(b, db, min(left, 1000), at)
	}
	clock := bottest.NewClock(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	return db, func(r web.Reader) *web.Server {
		return &web.Server{Store: r, Policy: func() *policies.Policy { return pol }, Clock: clock}
	}
}

// fillChain commits k dissent events, about other escalations, in one
// commit.
func fillChain(b *testing.B, db *store.DB, k int, at time.Time) {
	b.Helper()
	evs := make([]bot.Event, k)
	for i := range evs {
		evs[i] = bot.Event{
			Escalation: fmt.Sprintf("ESC-%d", 2+i%1000), Kind: bot.EventDissent, Actor: "bob", At: at,
			Data: bot.EventData{Text: "the token lives in local storage; an XSS anywhere on the origin reads it"},
		}
	}
	if _, err := db.Commit(context.Background(), &bot.Commit{Events: evs, At: at}); err != nil {
		b.Fatal(err)
	}
}

package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestDashboardTilesEqualFullScan seeds a store through the engine and
// checks, at several times, that every figure the dashboard shows from
// the counters kept at commit time and from the deadline indexes equals
// what a full scan of every escalation computes with bot's rules (as the
// dashboard computed them before it read aggregates).
func TestDashboardTilesEqualFullScan(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	// More history: an approval, a merge after it, a re-tier upward.
	s.say("UBOB", "/threatgate dissent ESC-1 more tests please")
	for _, at := range []time.Time{
		time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC),
		time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC),
	} {
		s.clock.Set(at)
		page := body(t, s.get("/"))
		all, err := s.db.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var open, breaches, late, urgent, deferred, approved, bypassed, forged int
		states := map[bot.State]int{}
		people, groups := map[string]int{}, map[string]int{}
		for _, e := range all {
			states[e.State]++
			if e.Bypassed {
				bypassed++
			}
			forged += e.Forged
			if e.State == bot.StateApproved {
				approved++
			}
			if !e.State.Active() {
				continue
			}
			open++
			if bot.Overdue(e, at) {
				breaches++
			}
			if bot.PastFirstResponse(e, s.pol, at) {
				late++
			}
			if e.Urgent {
				urgent++
			}
			if e.State == bot.StateDeferred {
				deferred++
			}
			if bot.Paused(e) {
				continue
			}
			w := bot.WaitingOn(e, s.pol)
			for _, p := range w {
				people[p]++
			}
			for _, g := range bot.HoldingGroups(e, s.pol, w) {
				groups[g]++
			}
		}
		for _, want := range []string{
			fmt.Sprintf("<strong>%d</strong> open", open),
			fmt.Sprintf("<strong>%d</strong> SLA breach", breaches),
			fmt.Sprintf("<strong>%d</strong> past first response", late),
			fmt.Sprintf("<strong>%d</strong> urgent", urgent),
			fmt.Sprintf("<strong>%d</strong> deferred", deferred),
			fmt.Sprintf("<strong>%d</strong> approved, not merged", approved),
			fmt.Sprintf("<strong>%d</strong> bypassed merge", bypassed),
			fmt.Sprintf("<strong>%d</strong> forged status", forged),
			fmt.Sprintf("All %d escalation", len(all)),
		} {
			if !strings.Contains(page, want) {
				t.Errorf("at %s: the dashboard does not say %q", at, want)
			}
		}
		for st, n := range states {
			wantContains(t, section(t, page, "all"), fmt.Sprintf("%s</span> %d</a>", strings.ReplaceAll(string(st), "_", " "), n))
		}
		b := section(t, page, "bottlenecks")
		for p, n := range people {
			if !strings.Contains(b, fmt.Sprintf("person=%s\"", p)) || !strings.Contains(b, fmt.Sprintf("</a> <strong>%d</strong>", n)) {
				t.Errorf("at %s: bottlenecks do not show %s holding %d", at, p, n)
			}
		}
		for g, n := range groups {
			wantContains(t, b, fmt.Sprintf(`<span class="who">%s</span> <strong>%d</strong>`, g, n))
		}
		// Throughput: the same weeks counted by a scan.
		th := section(t, page, "throughput")
		first := bot.WeekOf(at).AddDate(0, 0, -7*11)
		for i := range 12 {
			start := first.AddDate(0, 0, 7*i)
			opened, decided := 0, 0
			for _, e := range all {
				if !e.CreatedAt.IsZero() && bot.WeekOf(e.CreatedAt).Equal(start) {
					opened++
				}
				if !e.DecidedAt.IsZero() && bot.WeekOf(e.DecidedAt).Equal(start) {
					decided++
				}
			}
			y, w := start.ISOWeek()
			wantContains(t, th, fmt.Sprintf("%d-W%02d %d opened, %d decided", y, w, opened, decided))
		}
	}
	wantStatus(t, s.get("/"), http.StatusOK)
}

package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// fillRecord stores n escalations over a year (10% open, a few bypassed,
// 200 projects, 300 people), each a projection of realistic size with its
// esc_list entries, in bulk transactions that write what Commit writes
// for them (the projection and index), so that a store of 100,000 builds
// in seconds.
func fillRecord(b *testing.B, db *DB, n int) {
	b.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 42))
	closed := []bot.State{bot.StateMerged, bot.StateMerged, bot.StateMerged, bot.StateMerged, bot.StateApproved, bot.StateRejected, bot.StateWithdrawn}
	open := []bot.State{bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateInReview, bot.StateDisputed, bot.StateDeferred}
	person := func() string { return fmt.Sprintf("person%03d", r.IntN(300)) }
	step := 365 * 24 * time.Hour / time.Duration(n)
	for start := 0; start < n; start += 5000 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i := start; i < min(start+5000, n); i++ {
				at := t0.Add(time.Duration(i) * step)
				e := &bot.Escalation{
					ID: fmt.Sprintf("ESC-%d", i+1), Version: 7,
					Project: fmt.Sprintf("group%d/project%d", r.IntN(20), r.IntN(200)), MRIID: int64(i + 1),
					MRURL: fmt.Sprintf("https://gitlab.example.com/g/p/-/merge_requests/%d", i+1),
					Title: "change the session handling of the login service", Author: person(),
					CommitAuthors: []string{person()}, TargetBranch: "main", HeadSHA: "0123456789abcdef0123456789abcdef01234567",
					Tier: fmt.Sprintf("T%d", 1+r.IntN(3)), Score: 60,
					Signals:   []policies.Fired{{ID: "auth-code", Category: "access-control", Weight: 40}, {ID: "ci", Category: "ci-cd", Weight: 20}},
					Artifacts: []bot.Artifact{{Kind: "threat-model", Ref: "https://wiki.example.com/tm", By: person(), At: at}},
					Approvals: []bot.Decision{{By: person(), Group: "appsec", SHA: "0123456789abcdef", Rationale: "reviewed the token rotation", At: at}},
					CreatedAt: at, UpdatedAt: at, DecisionDue: at.Add(48 * time.Hour),
				}
				if i%10 == 0 {
					e.State = open[r.IntN(len(open))]
					e.Waiting = []string{person(), person()}
				} else {
					e.State = closed[r.IntN(len(closed))]
					e.DecidedAt = at.Add(20 * time.Hour)
					e.Bypassed = e.State == bot.StateMerged && r.IntN(50) == 0
				}
				e.Urgent = r.IntN(20) == 0
				v, err := json.Marshal(e)
				if err != nil {
					return err
				}
				if err := tx.Bucket(bucketEscalations).Put([]byte(e.ID), v); err != nil {
					return err
				}
				if err := indexList(tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListPage reads one page of 100 through ListPage on a store of
// 1,000 and of 100,000 escalations: the first page, a page from a cursor
// in the middle of the record, and filters walked through their index
// with the others checked on the page (the cost follows the page and the
// read budget, not the store).
func BenchmarkListPage(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		db := mustOpen(b)
		fillRecord(b, db, n)
		mid := t0.Add(180 * 24 * time.Hour)
		midPage, err := db.ListPage(ctx, bot.ListQuery{Until: mid, Limit: 1})
		if err != nil || midPage.Next == "" {
			b.Fatalf("a cursor in the middle: %+v, %v", midPage, err)
		}
		open := true
		for _, c := range []struct {
			name string
			q    bot.ListQuery
		}{
			{"first", bot.ListQuery{}},
			{"cursor-mid", bot.ListQuery{Until: mid, Cursor: midPage.Next}},
			{"state=merged", bot.ListQuery{State: string(bot.StateMerged)}},
			{"open&tier=T3", bot.ListQuery{Open: &open, Tier: "T3"}},
			{"person", bot.ListQuery{Person: "person007"}},
			{"project&closed", bot.ListQuery{Project: "group3/project17", State: bot.StateClosed}},
			{"bypassed", bot.ListQuery{State: bot.StateBypassed}},
			{"since-until", bot.ListQuery{Since: mid, Until: mid.Add(7 * 24 * time.Hour)}},
		} {
			b.Run(fmt.Sprintf("escalations=%d/%s", n, c.name), func(b *testing.B) {
				var items int
				var cost listCost
				for b.Loop() {
					p, n, err := db.listPage(ctx, c.q)
					if err != nil {
						b.Fatal(err)
					}
					items, cost = len(p.Items), n
				}
				b.ReportMetric(float64(items), "items/page")
				b.ReportMetric(float64(cost.walked), "walked/page")
				b.ReportMetric(float64(cost.decoded), "decoded/page")
			})
		}
	}
}

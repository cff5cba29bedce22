package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

// TestAggregatesMaintainedEqualRebuilt commits many random changes to
// escalations (new ones, state changes, re-tiers, merges with and without
// approval, forged statuses, holders, deferrals, decisions) and
// compactions, and checks after each stretch that the counters and the
// first-response index kept by Commit and Compact are exactly what
// RebuildAggregates computes from the projections, and what summing
// bot.Contributions over every escalation gives.
func TestAggregatesMaintainedEqualRebuilt(t *testing.T) {
	db := mustOpen(t)
	rng := rand.New(rand.NewPCG(14, 1))
	states := []bot.State{bot.StateIntake, bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateDisputed, bot.StateDeferred,
		bot.StateApproved, bot.StateRejected, bot.StateWithdrawn, bot.StateMerged}
	tiers := []string{"T1", "T2", "T3", "gone"}
	people := []string{"alice", "bob", "carol", "dave"}
	groups := []string{"appsec", "leads"}
	ids := map[int64]string{}
	now := t0
	some := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if rng.IntN(3) == 0 {
				out = append(out, x)
			}
		}
		return out
	}
	for step := range 1500 {
		now = now.Add(time.Duration(rng.IntN(48)) * time.Hour)
		iid := int64(rng.IntN(120))
		id, ok := ids[iid]
		if !ok {
			e := &bot.Escalation{Project: "shop/api", MRIID: iid, Tier: tiers[rng.IntN(3)], State: bot.StateAwaitingArtifacts,
				CreatedAt: now, UpdatedAt: now, FirstResponseDue: now.Add(4 * time.Hour), DecisionDue: now.Add(48 * time.Hour),
				Urgent: rng.IntN(5) == 0, WaitedOn: some(people)}
			saved := mustCommit(t, db, &bot.Commit{Escalation: e, At: now,
				Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: now}}})
			ids[iid] = saved.ID
			continue
		}
		old, err := db.FindEscalation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(15) == 0 {
			if _, err := db.Compact(ctx, id, old.Version, compactEvent(id, now)); err != nil {
				t.Fatalf("step %d: Compact: %v", step, err)
			}
			continue
		}
		p := old.Clone()
		p.Version++
		p.UpdatedAt = now
		switch rng.IntN(8) {
		case 0:
			p.Tier = tiers[rng.IntN(len(tiers))] // a re-tier, also to a tier the policy lost
		case 1:
			p.Forged++
		case 2:
			p.State, p.Bypassed, p.MergedAt = bot.StateMerged, p.State != bot.StateApproved, now
		case 3:
			p.State, p.DeferredAt, p.DeferredUntil = bot.StateDeferred, now, now.Add(time.Duration(rng.IntN(200))*time.Hour)
		case 4:
			p.Approvals = append(p.Approvals, bot.Decision{By: people[rng.IntN(len(people))], At: now})
		default:
			p.State = states[rng.IntN(len(states))]
		}
		if p.State == bot.StateApproved || p.State == bot.StateRejected {
			p.DecidedAt = now
		}
		p.WaitedOn, p.HeldByGroups = nil, nil
		if p.State.Active() {
			p.WaitedOn = some(people) // also while deferred: not counted then
		}
		if p.State.Active() && p.State != bot.StateDeferred {
			p.HeldByGroups = some(groups)
		}
		p.Urgent = p.Urgent != (rng.IntN(10) == 0)
		p.FirstResponseDue = now.Add(time.Duration(rng.IntN(10)-5) * time.Hour)
		p.DecisionDue = now.Add(time.Duration(rng.IntN(100)-50) * time.Hour)
		mustCommit(t, db, &bot.Commit{Escalation: p, Expect: old.Version, At: now,
			Events: []bot.Event{{Kind: bot.EventDissent, Actor: "bob", At: now, Data: bot.EventData{Text: fmt.Sprint("step ", step)}}}})

		if step%250 == 249 {
			checkAggregates(t, db, step)
		}
	}
	checkAggregates(t, db, -1)
}

func checkAggregates(t *testing.T, db *DB, step int) {
	t.Helper()
	kept, err := db.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keptFR := bucketCopy(t, db, bucketFirstResponse)
	all, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	summed := map[string]int64{}
	for _, e := range all {
		for _, c := range bot.Contributions(e) {
			summed[c.Key] += c.N
		}
	}
	maps.DeleteFunc(summed, func(_ string, n int64) bool { return n == 0 })
	if !maps.Equal(kept, summed) {
		t.Fatalf("step %d: counters kept by Commit differ from a full scan:\nkept   %v\nsummed %v", step, kept, summed)
	}
	if err := db.RebuildAggregates(ctx); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := db.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(kept, rebuilt) {
		t.Fatalf("step %d: counters kept by Commit differ from rebuilt:\nkept    %v\nrebuilt %v", step, kept, rebuilt)
	}
	if rebuiltFR := bucketCopy(t, db, bucketFirstResponse); !maps.Equal(keptFR, rebuiltFR) {
		t.Fatalf("step %d: first_response_due kept (%d entries) differs from rebuilt (%d)", step, len(keptFR), len(rebuiltFR))
	}
	if kept[("total")] != int64(len(all)) {
		t.Fatalf("step %d: total %d, %d escalations", step, kept["total"], len(all))
	}
}

func bucketCopy(t *testing.T, db *DB, name []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			out[string(k)] = string(bytes.Clone(v))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTimeCountsAgreeWithScan checks CountOverdue and
// CountPastFirstResponse against bot.Overdue and bot.PastFirstResponse
// over every escalation, at several times.
func TestTimeCountsAgreeWithScan(t *testing.T) {
	db := mustOpen(t)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 200 {
		at := t0.Add(time.Duration(i) * time.Hour)
		e := &bot.Escalation{Project: "p", MRIID: int64(i), Tier: "T2", State: bot.StateInReview, CreatedAt: at, UpdatedAt: at,
			FirstResponseDue: at.Add(time.Duration(rng.IntN(100)) * time.Hour), DecisionDue: at.Add(time.Duration(rng.IntN(300)) * time.Hour)}
		switch rng.IntN(6) {
		case 0:
			e.State, e.DeferredAt, e.DeferredUntil = bot.StateDeferred, at, at.Add(time.Duration(rng.IntN(200))*time.Hour)
		case 1:
			e.State = bot.StateApproved
		case 2:
			e.Dissents = []bot.Note{{By: "bob", At: at}}
		case 3:
			e.DecisionDue = time.Time{}
		}
		mustCommit(t, db, &bot.Commit{Escalation: e, At: at, Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}})
	}
	all, _ := db.List(ctx)
	responded := func(e *bot.Escalation) bool { return bot.FirstResponded(e, nil) }
	for h := 0; h < 600; h += 37 {
		now := t0.Add(time.Duration(h) * time.Hour)
		wantOver, wantLate := 0, 0
		for _, e := range all {
			if bot.Overdue(e, now) {
				wantOver++
			}
			if bot.PastFirstResponse(e, nil, now) {
				wantLate++
			}
		}
		if n, err := db.CountOverdue(ctx, now); err != nil || n != wantOver {
			t.Errorf("at +%dh: CountOverdue = %d, %v; want %d", h, n, err, wantOver)
		}
		if n, err := db.CountPastFirstResponse(ctx, now, responded); err != nil || n != wantLate {
			t.Errorf("at +%dh: CountPastFirstResponse = %d, %v; want %d", h, n, err, wantLate)
		}
	}
}

// TestIncidentEventsBetweenEqualsTheWindow checks that the incident events
// read through the index are those of the log's window.
func TestIncidentEventsBetweenEqualsTheWindow(t *testing.T) {
	db := mustOpen(t)
	for i := range 6 {
		at := t0.Add(time.Duration(i) * 10 * time.Hour)
		mustCommit(t, db, incidentCommit(bot.EventIncident, fmt.Sprintf("INC-%d", i+1), at))
		mustCommit(t, db, &bot.Commit{At: at, Escalation: &bot.Escalation{Project: "p", MRIID: int64(i + 1), State: bot.StateInReview, CreatedAt: at},
			Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}})
		if i%2 == 1 {
			mustCommit(t, db, incidentCommit(bot.EventIncidentFixed, fmt.Sprintf("INC-%d", i), at.Add(time.Hour)))
		}
	}
	for _, w := range [][2]time.Duration{{0, 100 * time.Hour}, {15 * time.Hour, 31 * time.Hour}, {200 * time.Hour, 300 * time.Hour}} {
		from, to := t0.Add(w[0]), t0.Add(w[1])
		all, err := db.EventsBetween(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for _, ev := range all {
			if ev.Kind == bot.EventIncident || ev.Kind == bot.EventIncidentFixed {
				want = append(want, ev.Seq)
			}
		}
		got, err := db.IncidentEventsBetween(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, ev := range got {
			seqs = append(seqs, ev.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(want) {
			t.Errorf("window %v: incident events %v, want %v", w, seqs, want)
		}
	}
}

// TestMigration11BuildsAggregates opens a file written at schema 10 (no
// counters) and checks that the migration builds what Commit would have
// kept.
func TestMigration11BuildsAggregates(t *testing.T) {
	dir := t.TempDir()
	old := mustOpenDir(t, dir, withMigrations(migrations[:10]))
	for i := range 20 {
		at := t0.Add(time.Duration(i) * 30 * time.Hour)
		e := &bot.Escalation{Project: "p", MRIID: int64(i + 1), Tier: []string{"T1", "T2", "T3"}[i%3], State: []bot.State{bot.StateInReview, bot.StateMerged, bot.StateDeferred, bot.StateApproved}[i%4],
			Bypassed: i%4 == 1 && i%3 == 0, Forged: i % 2, Urgent: i%5 == 0, WaitedOn: []string{"alice"}, CreatedAt: at, DecidedAt: at.Add(time.Hour),
			FirstResponseDue: at.Add(4 * time.Hour)}
		mustCommit(t, old, &bot.Commit{Escalation: e, At: at, Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}})
	}
	mustClose(t, old)
	db := mustOpenDir(t, dir)
	checkAggregates(t, db, 0)
	if c, _ := db.Counters(ctx); c["total"] != 20 {
		t.Errorf("total after migration = %d, want 20", c["total"])
	}
}

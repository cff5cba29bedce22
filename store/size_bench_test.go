package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
)

// sizePolicy tiers an MR touching auth code T2: one artifact, one approval.
const sizePolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
groups:
  appsec: {members: [alice, bob]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
`

// nopSink accepts every delivery.
type nopSink struct{}

func (nopSink) Deliver(context.Context, bot.Effect) (bot.MessageRef, error) {
	return bot.MessageRef{}, nil
}

// buildEscalations runs n escalations through the real Engine, the way
// production makes them: an MR touching auth code is opened (webhook), its
// author hands in the threat model, an appsec member approves, the MR is
// merged; the dispatcher drains the outbox as it goes. It returns the
// events written.
func buildEscalations(tb testing.TB, db *DB, n int) int {
	tb.Helper()
	ctx := context.Background()
	pol, err := policies.Load("size.yaml", []byte(sizePolicy))
	if err != nil {
		tb.Fatal(err)
	}
	clock := bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	eng := bot.NewEngine(db, pol, clock, nil)
	disp := bot.NewDispatcher(db, nil, nil, nil, clock, nil)
	for _, s := range []string{bot.SinkForge, bot.SinkChat, bot.SinkPager} {
		disp.AddSink(s, nopSink{})
	}
	disp.Threads = db
	cmd := func(id, line, esc string) bot.Input {
		c, err := bot.ParseCommand(line)
		if err != nil {
			tb.Fatal(err)
		}
		return bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: id}, Command: &c, Escalation: esc, Key: fmt.Sprintf("slack-%s-%d", id, clock.Now().UnixNano())}
	}
	before, _, _ := db.HeadOf(ctx)
	for i := range n {
		iid := int64(i + 1)
		sha := fmt.Sprintf("%040x", iid)
		mr := &policies.MergeRequest{
			IID: iid, PathWithNamespace: "shop/api", Title: fmt.Sprintf("session rework %d", iid), TargetBranch: "main", SHA: sha,
			UpdatedAt: clock.Now(), WebURL: fmt.Sprintf("https://gitlab.example.com/shop/api/-/merge_requests/%d", iid),
			Author:  policies.User{Username: "ann"},
			Changes: []policies.Change{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go"}},
		}
		rep, err := eng.Handle(ctx, bot.Input{Kind: bot.InputMR, Key: fmt.Sprintf("hook-%d-open", iid), MR: &bot.MRInput{Action: bot.MROpen, MR: mr}})
		if err != nil {
			tb.Fatal(err)
		}
		clock.Advance(time.Minute)
		if _, err := eng.Handle(ctx, cmd("UANN", "/threatgate artifact threat-model https://wiki.example.com/tm/"+fmt.Sprint(iid), rep.Escalation)); err != nil {
			tb.Fatal(err)
		}
		clock.Advance(time.Minute)
		if _, err := eng.Handle(ctx, cmd("UALICE", "/approve "+rep.Escalation+" reviewed the token rotation", "")); err != nil {
			tb.Fatal(err)
		}
		clock.Advance(time.Minute)
		merged := *mr
		merged.State = "merged"
		merged.UpdatedAt = clock.Now()
		if _, err := eng.Handle(ctx, bot.Input{Kind: bot.InputMR, Key: fmt.Sprintf("hook-%d-merge", iid), MR: &bot.MRInput{Action: bot.MRMerge, MR: &merged}}); err != nil {
			tb.Fatal(err)
		}
		if _, err := disp.DeliverDue(ctx); err != nil {
			tb.Fatal(err)
		}
		clock.Advance(2*time.Minute + 15*time.Second)
		if i%100 == 99 {
			// Housekeeping, as serve runs it: expired keys go.
			if _, err := db.PruneKeys(ctx, clock.Now()); err != nil {
				tb.Fatal(err)
			}
		}
	}
	after, _, _ := db.HeadOf(ctx)
	return int(after - before)
}

// BenchmarkStoreSize builds b.N escalations through the Engine (NoSync),
// one every 5 minutes 15 seconds of the fake clock (100,000 a year), and
// reports the file's bytes per escalation, the pages written per
// escalation (the high-water mark), the events per escalation, and, with
// -v, each bucket's share. Run with
//
//	go test -run XXX -bench StoreSize -benchtime 10000x ./store/
func BenchmarkStoreSize(b *testing.B) {
	n := b.N
	dir := b.TempDir()
	db, err := Open(dir, NoSync())
	if err != nil {
		b.Fatal(err)
	}
	events := buildEscalations(b, db, n)
	sizes := bucketSizes(b, db)
	var used int64
	db.bolt.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	db.Close()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		b.Fatal(err)
	}
	// The file grows in steps (bbolt allocates 16 MB at a time past 16
	// MB), so its size per escalation jumps with n; the pages written
	// (the high-water mark, free pages included) do not.
	b.ReportMetric(float64(fi.Size())/float64(n), "file_B/esc")
	b.ReportMetric(float64(used)/float64(n), "db_B/esc")
	b.ReportMetric(float64(events)/float64(n), "events/esc")
	var inBuckets int
	for _, s := range sizes {
		inBuckets += s.alloc
	}
	b.ReportMetric(float64(inBuckets)/float64(n), "buckets_B/esc")
	for _, s := range sizes {
		if s.keys > 0 {
			b.Logf("%-16s %8d keys %10d B in pages %10d B in use (%3.0f%%) %6.0f B/esc", s.name, s.keys, s.alloc, s.inuse, 100*float64(s.inuse)/float64(max(s.alloc, 1)), float64(s.alloc)/float64(n))
		}
	}
}

type bucketSize struct {
	name         string
	keys         int
	alloc, inuse int
}

func bucketSizes(tb testing.TB, db *DB) []bucketSize {
	var out []bucketSize
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			out = append(out, bucketSize{string(name), s.KeyN, s.BranchAlloc + s.LeafAlloc, s.BranchInuse + s.LeafInuse})
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alloc > out[j].alloc })
	return out
}

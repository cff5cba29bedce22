package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/bot"
)

var (
	listStates   = []bot.State{bot.StateIntake, bot.StateAwaitingArtifacts, bot.StateInReview, bot.StateDisputed, bot.StateDeferred, bot.StateApproved, bot.StateRejected, bot.StateWithdrawn, bot.StateMerged}
	listTiers    = []string{"T1", "T2", "T3"}
	listProjects = []string{"shop/api", "Shop/Web", "infra/ci"}
	listPeople   = []string{"ann", "bob", "carol", "Dave"}
)

// randomEscalation makes a projection with random filterable fields.
func randomEscalation(r *rand.Rand, iid int64, at time.Time) *bot.Escalation {
	e := &bot.Escalation{
		Project: listProjects[r.IntN(len(listProjects))], MRIID: iid,
		Author:    listPeople[r.IntN(len(listPeople))],
		CreatedAt: at, UpdatedAt: at,
	}
	randomize(r, e)
	return e
}

// randomize changes what the filters look at: state, tier, people, flags.
func randomize(r *rand.Rand, e *bot.Escalation) {
	e.State = listStates[r.IntN(len(listStates))]
	e.Tier = listTiers[r.IntN(len(listTiers))]
	e.Bypassed = e.State == bot.StateMerged && r.IntN(3) == 0
	e.Urgent, e.Manual, e.Forged = r.IntN(4) == 0, r.IntN(4) == 0, r.IntN(6)
	e.Filer = ""
	if e.Manual {
		e.Filer = listPeople[r.IntN(len(listPeople))]
	}
	e.Waiting = nil
	if e.State.Active() && r.IntN(2) == 0 {
		e.Waiting = []string{listPeople[r.IntN(len(listPeople))]}
	}
	e.Approvals = nil
	if r.IntN(2) == 0 {
		e.Approvals = []bot.Decision{{By: listPeople[r.IntN(len(listPeople))], At: e.CreatedAt}}
	}
	e.DecisionDue = e.CreatedAt.Add(time.Duration(r.IntN(72)) * time.Hour)
}

// scanQuery is what ListQuery selects by a full scan: every escalation,
// newest first.
func scanQuery(t *testing.T, db *DB, q bot.ListQuery) []string {
	t.Helper()
	all, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *bot.Escalation) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	var out []string
	for _, e := range all {
		if q.Match(e) {
			out = append(out, e.ID)
		}
	}
	return out
}

// pageAll follows the cursors of q to the end.
func pageAll(t *testing.T, db *DB, q bot.ListQuery) []string {
	t.Helper()
	var out []string
	for i := 0; ; i++ {
		p, err := db.ListPage(ctx, q)
		if err != nil {
			t.Fatalf("%s page %d: %v", q.Key(), i, err)
		}
		for _, e := range p.Items {
			out = append(out, e.ID)
		}
		if p.Next == "" {
			return out
		}
		if i > 10000 {
			t.Fatalf("%s: more than 10000 pages", q.Key())
		}
		q.Cursor = p.Next
	}
}

// randomQuery picks a combination of filters.
func randomQuery(r *rand.Rand, now time.Time) bot.ListQuery {
	q := bot.ListQuery{Limit: 1 + r.IntN(7), Now: now}
	if r.IntN(3) == 0 {
		q.State = bot.ListStates[r.IntN(len(bot.ListStates))]
	}
	if r.IntN(3) == 0 {
		q.Tier = listTiers[r.IntN(len(listTiers))]
	}
	if r.IntN(3) == 0 {
		q.Project = strings.ToUpper(listProjects[r.IntN(len(listProjects))])
	}
	if r.IntN(3) == 0 {
		q.Person = listPeople[r.IntN(len(listPeople))]
	}
	if r.IntN(4) == 0 {
		open := r.IntN(2) == 0
		q.Open = &open
	}
	if r.IntN(4) == 0 {
		q.Flag = bot.ListFlags[r.IntN(len(bot.ListFlags))]
	}
	if r.IntN(4) == 0 {
		q.Since = t0.Add(time.Duration(r.IntN(60)) * time.Hour)
	}
	if r.IntN(4) == 0 {
		q.Until = t0.Add(time.Duration(r.IntN(60)) * time.Hour)
	}
	return q
}

// checkListIndex compares the esc_list bucket with the keys of every
// stored projection.
func checkListIndex(t *testing.T, db *DB) {
	t.Helper()
	all, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range all {
		for _, k := range listKeys(e) {
			want[string(k)] = true
		}
	}
	got := map[string]bool{}
	db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketList).ForEach(func(k, _ []byte) error { got[string(k)] = true; return nil })
	})
	for k := range want {
		if !got[k] {
			t.Errorf("esc_list lacks %q", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("esc_list has %q, which no projection gives", k)
		}
	}
}

// TestListIndexAgreesWithScan: after random commits (new escalations and
// changes of state, tier, people and flags), the index holds exactly the
// entries of the stored projections, and every query paged through its
// cursors gives what a full scan filtered by ListQuery.Match gives.
func TestListIndexAgreesWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	db := mustOpen(t)
	var ids []string
	for i := range 300 {
		at := t0.Add(time.Duration(i) * 10 * time.Minute)
		if len(ids) == 0 || r.IntN(3) > 0 {
			e, err := db.Commit(ctx, &bot.Commit{Escalation: randomEscalation(r, int64(i+1), at), At: at})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
			continue
		}
		e, err := db.FindEscalation(ctx, ids[r.IntN(len(ids))])
		if err != nil {
			t.Fatal(err)
		}
		v := e.Version
		randomize(r, e)
		e.Version++
		if _, err := db.Commit(ctx, &bot.Commit{Escalation: e, Expect: v, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	checkListIndex(t, db)
	// ListWatched (reconcile) is List less the merged, through the index.
	all, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantWatched []string
	for _, e := range all {
		if e.Watched() {
			wantWatched = append(wantWatched, e.ID)
		}
	}
	watched, err := db.ListWatched(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range watched {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, wantWatched) || len(wantWatched) == 0 || len(wantWatched) == len(all) {
		t.Errorf("ListWatched = %v, want %v (of %d)", got, wantWatched, len(all))
	}
	now := t0.Add(40 * time.Hour)
	for i := range 400 {
		q := randomQuery(r, now)
		if i == 0 {
			q = bot.ListQuery{Limit: 50}
		}
		want, got := scanQuery(t, db, q), pageAll(t, db, q)
		if !slices.Equal(got, want) {
			t.Fatalf("%s (limit %d):\n got %v\nwant %v", q.Key(), q.Limit, got, want)
		}
	}
}

// TestListPageLimitAndBudget: a page holds at most Limit items (clamped);
// a rare match far down the index stops at the read budget with a Next
// that goes on, and the walk still finds it.
func TestListPageLimitAndBudget(t *testing.T) {
	db := mustOpen(t)
	n := 1500
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		e := &bot.Escalation{Project: "g/p", MRIID: int64(i + 1), Tier: "T1", State: bot.StateMerged, CreatedAt: at}
		if i == 3 {
			e.Tier = "T3" // the oldest but three: far down, newest first
		}
		if _, err := db.Commit(ctx, &bot.Commit{Escalation: e, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := db.ListPage(ctx, bot.ListQuery{})
	if err != nil || len(p.Items) != bot.DefaultListLimit || p.Next == "" {
		t.Fatalf("default page: %d items, next %q, %v", len(p.Items), p.Next, err)
	}
	if p.Items[0].MRIID != int64(n) {
		t.Errorf("first item is !%d, want the newest !%d", p.Items[0].MRIID, n)
	}
	if p, _ := db.ListPage(ctx, bot.ListQuery{Limit: 5000}); len(p.Items) != bot.MaxListLimit {
		t.Errorf("limit 5000 gave %d items, want the maximum %d", len(p.Items), bot.MaxListLimit)
	}
	// state=merged walks the merged range and checks the tier on each:
	// the budget (1000 reads for a limit of 1) ends the first page.
	q := bot.ListQuery{State: string(bot.StateMerged), Tier: "T3", Limit: 1}
	p, err = db.ListPage(ctx, q)
	if err != nil || len(p.Items) != 0 || p.Next == "" {
		t.Fatalf("first page of a rare match: %d items, next %q, %v; want none and a next", len(p.Items), p.Next, err)
	}
	q.Cursor = p.Next
	p, err = db.ListPage(ctx, q)
	if err != nil || len(p.Items) != 1 || p.Items[0].Tier != "T3" || p.Next == "" {
		t.Fatalf("second page: %+v, %v; want the T3 one and a next (three older entries are left)", p, err)
	}
	q.Cursor = p.Next
	if p, err = db.ListPage(ctx, q); err != nil || len(p.Items) != 0 || p.Next != "" {
		t.Fatalf("last page: %+v, %v; want nothing and no next", p, err)
	}
}

// TestListPageStableUnderInserts: escalations opened while a client
// pages are newer than every position handed out, so the pages hold
// each escalation there was when paging began exactly once, in order; one
// opened in the very nanosecond of the last position handed out may show
// on a later page (ids order it), but nothing repeats.
func TestListPageStableUnderInserts(t *testing.T) {
	db := mustOpen(t)
	at := t0
	add := func(iid int64, same bool) {
		if !same {
			at = at.Add(time.Minute)
		}
		if _, err := db.Commit(ctx, &bot.Commit{Escalation: &bot.Escalation{Project: "g/p", MRIID: iid, Tier: "T2", State: bot.StateInReview, CreatedAt: at}, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		add(int64(i+1), false)
	}
	before := scanQuery(t, db, bot.ListQuery{})
	var got []string
	q := bot.ListQuery{Limit: 7}
	iid := int64(1000)
	for {
		p, err := db.ListPage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Items {
			got = append(got, e.ID)
		}
		// Three more arrive between pages; the first of them at the very
		// time of the last one listed.
		for i := range 3 {
			iid++
			if i == 0 && len(p.Items) > 0 {
				at = p.Items[len(p.Items)-1].CreatedAt
				add(iid, true)
				continue
			}
			add(iid, false)
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	var old []string
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("%s listed twice", id)
		}
		seen[id] = true
		if slices.Contains(before, id) {
			old = append(old, id)
		}
	}
	if !slices.Equal(old, before) {
		t.Errorf("paged while inserting:\n got %v\nwant %v", old, before)
	}
}

// TestListCursorRefused: a cursor that is garbage, altered, too long, or
// given for other filters is a Problem naming the cursor.
func TestListCursorRefused(t *testing.T) {
	db := mustOpen(t)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := db.Commit(ctx, &bot.Commit{Escalation: &bot.Escalation{Project: "g/p", MRIID: int64(i + 1), Tier: "T2", State: bot.StateMerged, CreatedAt: at}, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := db.ListPage(ctx, bot.ListQuery{Limit: 2, Tier: "T2"})
	if err != nil || p.Next == "" {
		t.Fatal(p, err)
	}
	raw, _ := base64Decode(p.Next)
	raw[3] ^= 1 // another position, same signature
	for name, q := range map[string]bot.ListQuery{
		"garbage":       {Cursor: "not a cursor!", Tier: "T2"},
		"empty base64":  {Cursor: "AA", Tier: "T2"},
		"altered":       {Cursor: base64Encode(raw), Tier: "T2"},
		"too long":      {Cursor: strings.Repeat("A", 600), Tier: "T2"},
		"other filters": {Cursor: p.Next, Tier: "T3"},
	} {
		_, err := db.ListPage(ctx, q)
		pr, ok := bot.IsProblem(err)
		if !ok || pr.Field != "cursor" {
			t.Errorf("%s: %v, want a Problem about the cursor", name, err)
		}
	}
	// The same filters with another page size go on.
	if p2, err := db.ListPage(ctx, bot.ListQuery{Limit: 10, Tier: "T2", Cursor: p.Next}); err != nil || len(p2.Items) != 3 {
		t.Errorf("cursor with another limit: %d items, %v; want the 3 left", len(p2.Items), err)
	}
}

// TestMigrateListIndex: a file from before the index (schema 8) with
// escalations gets every entry, a cursor key, and queries that work.
func TestMigrateListIndex(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir, withMigrations(migrations[:8]))
	r := rand.New(rand.NewPCG(1, 2))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketList) != nil {
			return fmt.Errorf("schema 8 already has %s", bucketList)
		}
		for i := range 40 {
			e := randomEscalation(r, int64(i+1), t0.Add(time.Duration(i)*time.Hour))
			e.ID = fmt.Sprintf("ESC-%d", i+1)
			v, _ := json.Marshal(e)
			if err := tx.Bucket(bucketEscalations).Put([]byte(e.ID), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	checkListIndex(t, db)
	var key []byte
	db.bolt.View(func(tx *bolt.Tx) error {
		key = bytes.Clone(tx.Bucket(bucketMeta).Get([]byte(metaListKey)))
		return nil
	})
	if len(key) != 32 {
		t.Fatalf("cursor key after migration: %d bytes", len(key))
	}
	for _, q := range []bot.ListQuery{{Limit: 3}, {State: "open", Limit: 2}, {Person: "ann", Tier: "T2", Limit: 2}} {
		if got, want := pageAll(t, db, q), scanQuery(t, db, q); !slices.Equal(got, want) {
			t.Errorf("%s after migration: %v, want %v", q.Key(), got, want)
		}
	}
	// A reopen keeps the key: cursors survive restarts.
	mustClose(t, db)
	db = mustOpenDir(t, dir)
	db.bolt.View(func(tx *bolt.Tx) error {
		if !bytes.Equal(tx.Bucket(bucketMeta).Get([]byte(metaListKey)), key) {
			t.Error("the cursor key changed on reopen")
		}
		return nil
	})
}

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
func base64Encode(b []byte) string          { return base64.RawURLEncoding.EncodeToString(b) }

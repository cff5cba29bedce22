package store

import (
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
)

// TestUnescalatedKeptAcrossReopen: what is remembered of MRs classified
// into no tier, and the projects seen, survive a restart; forgetting
// removes only the MRs named; one project's MRs are read without the
// next project's (whose path extends it).
func TestUnescalatedKeptAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpenDir(t, dir)
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	put := []bot.Unescalated{
		{Project: "shop/api", IID: 3, SHA: "aaa", Facts: "f3", At: at},
		{Project: "shop/api", IID: 300, SHA: "bbb", Facts: "f300", At: at},
		{Project: "shop/api-v2", IID: 1, SHA: "ccc", Facts: "f1", At: at},
	}
	before := db.WriteTxs()
	if err := db.KeepUnescalated(ctx, put, nil); err != nil {
		t.Fatal(err)
	}
	if n := db.WriteTxs() - before; n != 1 {
		t.Errorf("keeping 3 MRs and their projects took %d writes, want 1", n)
	}
	if err := db.KeepUnescalated(ctx, nil, nil); err != nil || db.WriteTxs()-before != 1 {
		t.Errorf("keeping nothing wrote (%v)", err)
	}
	mustClose(t, db)

	db = mustOpenDir(t, dir)
	all, err := db.FindUnescalated(ctx, "shop/api", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[3].SHA != "aaa" || all[300].Facts != "f300" || all[3].IID != 3 || all[3].Project != "shop/api" || !all[3].At.Equal(at) {
		t.Errorf("shop/api after reopening: %+v", all)
	}
	some, err := db.FindUnescalated(ctx, "shop/api", []int64{300, 4})
	if err != nil || len(some) != 1 || some[300].SHA != "bbb" {
		t.Errorf("FindUnescalated(300, 4) = %+v, %v", some, err)
	}
	if err := db.KeepUnescalated(ctx, []bot.Unescalated{{Project: "shop/api", IID: 3, SHA: "ddd", Facts: "f3", At: at}},
		[]bot.Unescalated{{Project: "shop/api", IID: 300}}); err != nil {
		t.Fatal(err)
	}
	all, _ = db.FindUnescalated(ctx, "shop/api", nil)
	if len(all) != 1 || all[3].SHA != "ddd" {
		t.Errorf("after replacing !3 and forgetting !300: %+v", all)
	}
	if other, _ := db.FindUnescalated(ctx, "shop/api-v2", nil); len(other) != 1 {
		t.Errorf("shop/api-v2: %+v", other)
	}

	if err := db.SawProjects(ctx, "grp/web", "shop/api"); err != nil {
		t.Fatal(err)
	}
	before = db.WriteTxs()
	if err := db.SawProjects(ctx, "grp/web", "shop/api"); err != nil || db.WriteTxs() != before {
		t.Errorf("seeing known projects again wrote (%v)", err)
	}
	seen, err := db.ProjectsSeen(ctx)
	if want := []string{"grp/web", "shop/api", "shop/api-v2"}; err != nil || !slices.Equal(seen, want) {
		t.Errorf("ProjectsSeen = %v, %v; want %v", seen, err, want)
	}
	if err := db.KeepUnescalated(ctx, []bot.Unescalated{{Project: "", IID: 1}}, nil); err == nil {
		t.Error("an MR without a project was kept")
	}
}

// TestMigration13AddsUnescalated opens a file of schema 12 and finds the
// new buckets after the migration, with the project of every escalation
// kept as seen, merged ones included (review15: a project whose
// escalations all merged before the upgrade was never listed).
func TestMigration13AddsUnescalated(t *testing.T) {
	dir := t.TempDir()
	old := mustOpenDir(t, dir, withMigrations(migrations[:12]))
	for i, m := range []struct {
		project string
		state   bot.State
	}{{"Shop/Web", bot.StateMerged}, {"shop/web", bot.StateMerged}, {"grp/sub/api", bot.StateInReview}, {"grp/sub/api-v2", bot.StateMerged}} {
		at := t0.Add(time.Duration(i) * time.Hour)
		e := &bot.Escalation{Project: m.project, MRIID: int64(i + 1), Tier: "T2", State: m.state, CreatedAt: at}
		mustCommit(t, old, &bot.Commit{Escalation: e, At: at, Events: []bot.Event{{Kind: bot.EventOpened, Actor: "system", At: at}}})
	}
	mustClose(t, old)
	db := mustOpenDir(t, dir)
	seen, err := db.ProjectsSeen(ctx)
	if want := []string{"grp/sub/api", "grp/sub/api-v2", "shop/web"}; err != nil || !slices.Equal(seen, want) {
		t.Errorf("ProjectsSeen after the migration = %v, %v; want %v (by_mr's paths, in lower case)", seen, err, want)
	}
	if err := db.KeepUnescalated(ctx, []bot.Unescalated{{Project: "p/q", IID: 1, SHA: "a"}}, nil); err != nil {
		t.Fatal(err)
	}
	if seen, err := db.ProjectsSeen(ctx); err != nil || len(seen) != 4 {
		t.Errorf("ProjectsSeen = %v, %v", seen, err)
	}
}

// TestKeepUnescalatedKeepsProjectsInItsWrite: projects named beside the
// MRs are kept in the same write; with no MR, only new projects write.
func TestKeepUnescalatedKeepsProjectsInItsWrite(t *testing.T) {
	db := mustOpenDir(t, t.TempDir())
	before := db.WriteTxs()
	if err := db.KeepUnescalated(ctx, []bot.Unescalated{{Project: "shop/api", IID: 1, SHA: "a", Policy: "p1"}}, nil, "shop/web", "grp/x"); err != nil {
		t.Fatal(err)
	}
	if n := db.WriteTxs() - before; n != 1 {
		t.Errorf("keeping an MR and two projects took %d writes, want 1", n)
	}
	before = db.WriteTxs()
	if err := db.KeepUnescalated(ctx, nil, nil, "shop/web"); err != nil || db.WriteTxs() != before {
		t.Errorf("keeping a known project again wrote (%v)", err)
	}
	seen, err := db.ProjectsSeen(ctx)
	if want := []string{"grp/x", "shop/api", "shop/web"}; err != nil || !slices.Equal(seen, want) {
		t.Errorf("ProjectsSeen = %v, %v; want %v", seen, err, want)
	}
	got, err := db.FindUnescalated(ctx, "shop/api", nil)
	if err != nil || got[1].Policy != "p1" {
		t.Errorf("FindUnescalated = %+v, %v; want the policy digest kept", got, err)
	}
}

// TestForgetProject: a project is forgotten under any spelling of its
// case, with what is remembered of its MRs; the project whose path
// extends it is left alone; a project not kept writes nothing.
func TestForgetProject(t *testing.T) {
	db := mustOpenDir(t, t.TempDir())
	put := []bot.Unescalated{{Project: "shop/gone", IID: 1, SHA: "a"}, {Project: "shop/gone", IID: 2, SHA: "b"}, {Project: "shop/gone-v2", IID: 1, SHA: "c"}}
	if err := db.KeepUnescalated(ctx, put, nil, "Shop/Gone"); err != nil {
		t.Fatal(err)
	}
	if err := db.ForgetProject(ctx, "shop/gone"); err != nil {
		t.Fatal(err)
	}
	seen, err := db.ProjectsSeen(ctx)
	if want := []string{"shop/gone-v2"}; err != nil || !slices.Equal(seen, want) {
		t.Errorf("ProjectsSeen = %v, %v; want %v", seen, err, want)
	}
	if got, _ := db.FindUnescalated(ctx, "shop/gone", nil); len(got) != 0 {
		t.Errorf("shop/gone's MRs are still remembered: %+v", got)
	}
	if got, _ := db.FindUnescalated(ctx, "shop/gone-v2", nil); len(got) != 1 {
		t.Errorf("shop/gone-v2's MRs: %+v, want 1", got)
	}
	before := db.WriteTxs()
	if err := db.ForgetProject(ctx, "shop/never"); err != nil || db.WriteTxs() != before {
		t.Errorf("forgetting a project not kept wrote (%v)", err)
	}
}

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
// new buckets after the migration.
func TestMigration13AddsUnescalated(t *testing.T) {
	dir := t.TempDir()
	old := mustOpenDir(t, dir, withMigrations(migrations[:12]))
	mustClose(t, old)
	db := mustOpenDir(t, dir)
	if err := db.KeepUnescalated(ctx, []bot.Unescalated{{Project: "p/q", IID: 1, SHA: "a"}}, nil); err != nil {
		t.Fatal(err)
	}
	if seen, err := db.ProjectsSeen(ctx); err != nil || len(seen) != 1 {
		t.Errorf("ProjectsSeen = %v, %v", seen, err)
	}
}

package bot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/store"
)

// TestEngineIncident records incidents through the engine on a real store:
// one on an escalated MR (its escalation's id and tier in the data, the
// escalation untouched), one on an MR never escalated (leaked), then the
// remediation; the ids survive a reopen, and the window of events gives
// the figures.
func TestEngineIncident(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(7, "aaa", r.clock.Now(), "src/auth/login.go")); err != nil {
		t.Fatal(err)
	}
	// Merged (past its gate): an incident is about merged code.
	merged := mrInput(7, "aaa", r.clock.Now(), "src/auth/login.go")
	merged.MR.Action = bot.MRMerge
	if _, err := r.eng.Handle(ctx, merged); err != nil {
		t.Fatal(err)
	}
	esc, err := r.db.FindByMR(ctx, "shop/api", 7)
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate incident shop/api!7 session fixation", ""))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Text, "Incident INC-1 recorded on shop/api!7 (escalation "+esc.ID+" in T2)") {
		t.Errorf("reply = %q", rep.Text)
	}
	after, err := r.db.FindEscalation(ctx, esc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != esc.Version {
		t.Errorf("the escalation moved from version %d to %d", esc.Version, after.Version)
	}
	rep, err = r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate incident shop/api!8 open redirect", ""))
	if err != nil || !strings.Contains(rep.Text, "INC-2") || !strings.Contains(rep.Text, "leaked") {
		t.Fatalf("second incident: %q, %v", rep.Text, err)
	}
	// Someone not in the policy is refused, and no id is spent.
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UZED", "/threatgate incident shop/api!8 x", "")); !isProblem(err) {
		t.Fatalf("stranger: err = %v, want a Problem", err)
	}

	r.db.Close()
	db, err := store.Open(r.dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	r.db = db
	r.eng = bot.NewEngine(db, r.pol, r.clock, nil)

	r.clock.Advance(26 * time.Hour)
	rep, err = r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate incident-fixed inc-1 rotated sessions", ""))
	if err != nil || !strings.Contains(rep.Text, "INC-1 is remediated, 1d 2h after") {
		t.Fatalf("fixed: %q, %v", rep.Text, err)
	}
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate incident-fixed INC-1", "")); !isProblem(err) {
		t.Fatalf("fixed twice: err = %v, want a Problem", err)
	}
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate incident-fixed INC-3", "")); !isProblem(err) {
		t.Fatalf("unknown: err = %v, want a Problem", err)
	}
	inc, err := db.FindIncident(ctx, "INC-1")
	if err != nil || inc.Recorded.Data.EscalationID != esc.ID || inc.Recorded.Data.Tier != "T2" || inc.Fixed == nil {
		t.Fatalf("FindIncident = %+v, %v", inc, err)
	}
	if _, err := db.FindIncident(ctx, "INC-9"); !errors.Is(err, bot.ErrNotFound) {
		t.Errorf("FindIncident(INC-9) err = %v, want ErrNotFound", err)
	}
	if id, err := db.NextIncident(ctx); err != nil || id != "INC-3" {
		t.Errorf("NextIncident = %q, %v; want INC-3", id, err)
	}

	events, err := db.EventsBetween(ctx, r.clock.Now().Add(-30*24*time.Hour), r.clock.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f := bot.IncidentFiguresOf(events, r.clock.Now().Add(-30*24*time.Hour), r.clock.Now().Add(time.Second))
	if f.Recorded != 2 || f.Leakage != (bot.Rate{Count: 1, Of: 2}) || f.NearMisses != 0 || f.Remediation.N != 1 || f.Remediation.Median != 26*time.Hour {
		t.Errorf("figures = %+v", f)
	}
}

func isProblem(err error) bool { _, ok := bot.IsProblem(err); return ok }

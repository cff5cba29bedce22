package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
)

// TestEngineDeferralNeedsAPeak: the engine counts the open escalations in
// the store for a deferral; below backlog.peak_open_threshold only the
// override group defers.
func TestEngineDeferralNeedsAPeak(t *testing.T) {
	pol := strings.Replace(enginePolicy, "    approvals: [{group: appsec, count: 1}]\n", "    approvals: [{group: appsec, count: 1}]\n    deferrable: true\n", 1) +
		"backlog: {peak_open_threshold: 2, max_deferral: 7d}\n"
	r := testrig.NewRig(t, pol)
	ctx := context.Background()
	if _, err := r.Engine.Handle(ctx, mrInput(12, "aaa", r.Clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.DB.CountOpen(ctx); err != nil || n != 1 {
		t.Fatalf("CountOpen = %d, %v; want 1", n, err)
	}
	_, err := r.Engine.Handle(ctx, command(t, "slack", "UALICE", "/threatgate defer 3d vendor", "ESC-1"))
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "1 escalations are open") {
		t.Fatalf("deferral with one open: %v, want refused", err)
	}
	if _, err := r.Engine.Handle(ctx, mrInput(13, "bbb", r.Clock.Now(), "internal/auth/login.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Engine.Handle(ctx, command(t, "slack", "UALICE", "/threatgate defer 3d vendor", "ESC-1")); err != nil {
		t.Fatalf("deferral with two open: %v", err)
	}
	e, _ := r.DB.FindEscalation(ctx, "ESC-1")
	if e.State != bot.StateDeferred {
		t.Errorf("ESC-1 is %s, want deferred", e.State)
	}
	// Deferred escalations wait on nobody: they do not make the peak.
	if n, _ := r.DB.CountOpen(ctx); n != 1 {
		t.Errorf("CountOpen = %d, want 1", n)
	}
	_, err = r.Engine.Handle(ctx, command(t, "slack", "UALICE", "/threatgate defer 8d vendor", "ESC-2"))
	if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Msg, "backlog.max_deferral") {
		t.Errorf("deferral past max_deferral: %v, want refused", err)
	}
}

// TestEngineAway: an absence is committed without an escalation, even when
// written in an escalation's thread, and the store reads it back for the
// sweep until it ends or the person is back.
func TestEngineAway(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	before, _ := r.db.FindEscalation(ctx, "ESC-1")
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate away until 2026-11-09", "ESC-1"))
	if err != nil || !strings.Contains(rep.Text, "away until 2026-11-09") {
		t.Fatalf("away: %q, %v", rep.Text, err)
	}
	after, _ := r.db.FindEscalation(ctx, "ESC-1")
	if after.Version != before.Version {
		t.Errorf("the thread's escalation moved from version %d to %d", before.Version, after.Version)
	}
	until := time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)
	away, err := r.db.Away(ctx, r.clock.Now())
	if err != nil || len(away) != 1 || !away["alice"].Equal(until) {
		t.Fatalf("Away = %v, %v; want alice until %v", away, err, until)
	}
	if !bot.AwayAt(r.pol.Person("id", "alice"), away, r.clock.Now()) {
		t.Error("AwayAt(alice) = false")
	}
	if away, _ := r.db.Away(ctx, until); len(away) != 0 {
		t.Errorf("Away on the day she is back = %v, want nobody", away)
	}
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate away off", "")); err != nil {
		t.Fatal(err)
	}
	if away, _ := r.db.Away(ctx, r.clock.Now()); len(away) != 0 {
		t.Errorf("Away after away off = %v, want nobody", away)
	}
}

// TestEngineActionItems: items recorded and closed through the engine are
// kept on the escalation, and the overdue ones are found.
func TestEngineActionItems(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"/threatgate action ESC-1 @bob due:2026-11-03 rotate the key",
		"/threatgate action ESC-1 write the runbook",
		"/threatgate done ESC-1 2",
	} {
		if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", line, "")); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	e, _ := r.db.FindEscalation(ctx, "ESC-1")
	if len(e.Actions) != 2 || e.Actions[0].Owner != "bob" || e.Actions[1].Owner != "alice" || !e.Actions[1].Done || e.Actions[1].DoneBy != "alice" {
		t.Fatalf("actions = %+v", e.Actions)
	}
	if got := bot.ActionsOverdue(e, time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)); len(got) != 1 || got[0] != 1 {
		t.Errorf("ActionsOverdue = %v, want [1]", got)
	}
	rep, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/threatgate status ESC-1", ""))
	if err != nil || !strings.Contains(rep.Text, "1. rotate the key (bob, due 2026-11-03)") {
		t.Errorf("status: %q, %v", rep.Text, err)
	}
}

package bot_test

import (
	"context"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
)

// TestNoStatusLandsAfterANewerOne: a status effect that failed for a
// "permanent" reason is retried 6h later and holds nothing up, so a newer
// status for the same head goes out first; the old one must then never be
// delivered (it was: the stale success landed last, the gate green on a
// disputed escalation).
func TestNoStatusLandsAfterANewerOne(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	broken := false
	forge.Fail = func(e bot.Effect) error {
		if broken && e.Kind == bot.EffectStatus {
			return permanent{} // e.g. a 403 while the token's role was being fixed
		}
		return nil
	}
	d := bot.NewDispatcher(r.db, forge, nil, nil, r.clock, nil)
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "auth/x.go")); err != nil {
		t.Fatal(err)
	}
	d.DeliverDue(ctx)
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate artifact threat-model https://wiki/tm", "ESC-1")); err != nil {
		t.Fatal(err)
	}
	d.DeliverDue(ctx)
	broken = true
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UALICE", "/approve ok", "ESC-1")); err != nil {
		t.Fatal(err)
	}
	d.DeliverDue(ctx) // success@aaa fails "permanently": retried in 6h
	broken = false
	r.clock.Advance(time.Hour)
	bob := bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "bob", Surface: "test"}, Escalation: "ESC-1"}
	c, _ := bot.ParseCommand("/threatgate reject leaks the session id")
	bob.Command = &c
	if _, err := r.eng.Handle(ctx, bob); err != nil {
		t.Fatal(err)
	}
	d.DeliverDue(ctx) // pending@aaa (disputed) goes out
	r.clock.Advance(6 * time.Hour)
	d.DeliverDue(ctx) // the old success is retried
	e, _ := r.db.FindByMR(ctx, "shop/api", 12)
	got := statuses(forge.Effects())
	if last := got[len(got)-1]; last == "success@aaa" {
		t.Errorf("statuses delivered in this order: %v; the gate ends green on aaa while the escalation is %s", got, e.State)
	}
}

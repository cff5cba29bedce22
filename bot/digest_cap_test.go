package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
)

// TestDigestShowsTheCap: the digest lists manual escalations this quarter
// against the cap, the closest to it first.
func TestDigestShowsTheCap(t *testing.T) {
	r := testrig.NewRig(t, enginePolicy) // caps: 1 manual escalation per quarter, override group leads
	ctx := context.Background()
	for _, line := range []string{"/escalate shop/api!40 --tier T2 odd token handling\nsummary: s\nassets: a\nexploit: e"} {
		c, err := bot.ParseCommand(line)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "bob", Surface: "web"}, Command: &c}); err != nil {
			t.Fatal(err)
		}
	}
	now := r.Clock.Now()
	if err := r.Engine.Digest(ctx, now, now.Add(-24*60*60*1e9), ""); err != nil {
		t.Fatal(err)
	}
	recs, err := r.DB.PendingEffects(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var d *bot.DigestData
	for _, rec := range recs {
		if rec.Effect.Kind == bot.EffectDigest && rec.Effect.Digest != nil {
			d = rec.Effect.Digest
		}
	}
	if d == nil {
		t.Fatal("no digest queued")
	}
	if d.Cap != 1 || len(d.Caps) != 1 || d.Caps[0].Person != "bob" || d.Caps[0].Quarter != 1 || d.Caps[0].Allowed != 1 {
		t.Fatalf("caps %d %+v", d.Cap, d.Caps)
	}
	if text := bot.RenderDigestText(d); !strings.Contains(text, "Manual escalations this quarter (cap 1, plus overrides): bob 1 of 1") {
		t.Errorf("digest text lacks the cap:\n%s", text)
	}
}

// TestReportSlotRunsOnceAcrossRestarts: a weekly report's slot is
// remembered for weeks, not for the few days redeliveries are: a restart
// on Friday does not post Monday's report again.
func TestReportSlotRunsOnceAcrossRestarts(t *testing.T) {
	r := testrig.NewRig(t, enginePolicy)
	ctx := context.Background()
	monday := time.Date(2026, 11, 9, 9, 0, 0, 0, time.UTC)
	count := func() int {
		recs, err := r.DB.PendingEffects(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range recs {
			if rec.Effect.Kind == bot.EffectDigest {
				n++
			}
		}
		return n
	}
	r.Clock.Set(monday)
	if err := r.Engine.Report(ctx, monday, ""); err != nil {
		t.Fatal(err)
	}
	// Friday, four days on: the keys of redeliveries (72h) have expired;
	// the catch-up at start asks for Monday's slot again.
	friday := monday.Add(4 * 24 * time.Hour)
	r.Clock.Set(friday)
	r.DB.PruneKeys(ctx, friday)
	if err := r.Engine.Report(ctx, monday, ""); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("%d reports queued for one slot, want 1", n)
	}
}

package bot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
)

type rateLimited struct{ after time.Duration }

func (r rateLimited) Error() string             { return "429 too many requests" }
func (r rateLimited) RetryAfter() time.Duration { return r.after }

type permanent struct{}

func (permanent) Error() string   { return "404 project not found" }
func (permanent) Permanent() bool { return true }

func statuses(effs []bot.Effect) []string {
	var out []string
	for _, e := range effs {
		if e.Kind == bot.EffectStatus {
			out = append(out, e.Status+"@"+e.SHA)
		}
	}
	return out
}

func TestDispatcherRetriesInOrderAndOnce(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	down := true
	forge.Fail = func(e bot.Effect) error {
		if down {
			return errors.New("502 bad gateway")
		}
		return nil
	}
	chat := &bottest.Chat{}
	d := bot.NewDispatcher(r.db, forge, chat, nil, r.clock, nil)

	// Open (pending), artifact, approve (success): all queued while GitLab is down.
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"/threatgate artifact threat-model https://wiki/tm", "/approve ok"} {
		who := "UANN"
		if strings.HasPrefix(line, "/approve") {
			who = "UALICE"
		}
		if _, err := r.eng.Handle(ctx, command(t, "slack", who, line, "ESC-1")); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		if n, err := d.DeliverDue(ctx); err != nil || n != 0 {
			t.Fatalf("pass while down: delivered %d, %v", n, err)
		}
		r.clock.Advance(10 * time.Minute)
	}
	down = false
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	// The pending status was superseded by success on the same head: one
	// status, the final one; one note for the opening, one for the decision.
	if got := statuses(forge.Effects()); len(got) != 1 || got[0] != "success@aaa" {
		t.Errorf("statuses delivered %v, want exactly [success@aaa]", got)
	}
	notes := 0
	for _, e := range forge.Effects() {
		if e.Kind == bot.EffectMRNote {
			notes++
		}
	}
	if notes != 2 {
		t.Errorf("%d notes, want 2 (opened, approved)", notes)
	}
	if len(chat.Messages()) == 0 {
		t.Error("no thread posts delivered")
	}
	if left, _ := r.db.PendingEffects(ctx, 0); len(left) != 0 {
		t.Errorf("%d effects left in the outbox", len(left))
	}
	// Nothing is delivered twice.
	before := len(forge.Effects())
	d.DeliverDue(ctx)
	if len(forge.Effects()) != before {
		t.Error("a second pass delivered again")
	}
}

func TestDispatcherHonoursRateLimitsAndGivesUpOnPermanent(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	var fail error = rateLimited{after: 90 * time.Second}
	forge.Fail = func(bot.Effect) error { return fail }
	d := bot.NewDispatcher(r.db, forge, nil, nil, r.clock, nil)
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "auth/x.go")); err != nil {
		t.Fatal(err)
	}
	d.DeliverDue(ctx)
	recs, _ := r.db.PendingEffects(ctx, 0)
	var first bot.OutboxRecord
	for _, rec := range recs {
		if rec.Attempts > 0 {
			first = rec
		}
	}
	if want := r.clock.Now().Add(90 * time.Second); !first.NextAttempt.Equal(want) {
		t.Errorf("next attempt %s, want %s (the rate limit's Retry-After)", first.NextAttempt, want)
	}
	// Held: the rest of the escalation's effects were not tried out of order.
	tried := 0
	for _, rec := range recs {
		if rec.Attempts > 0 {
			tried++
		}
	}
	if tried != 1 {
		t.Errorf("%d effects tried, want 1: the others wait behind the first", tried)
	}
	r.clock.Advance(2 * time.Minute)
	fail = permanent{}
	d.DeliverDue(ctx)
	recs, _ = r.db.PendingEffects(ctx, 0)
	dead := 0
	for _, rec := range recs {
		if rec.NextAttempt.Equal(r.clock.Now().Add(6*time.Hour)) && strings.HasPrefix(rec.LastError, "permanent: ") && strings.Contains(rec.LastError, "404") {
			dead++
		}
	}
	if dead != len(recs) || dead == 0 {
		t.Errorf("after permanent failures, want every effect tried (none held back by another) and waiting 6h: %+v", recs)
	}
	// Fixed (a new token): they go out at the next try.
	fail = nil
	r.clock.Advance(6 * time.Hour)
	d.DeliverDue(ctx)
	if left, _ := r.db.PendingEffects(ctx, 0); len(left) != 0 {
		t.Errorf("%d effects still waiting after the cause was fixed", len(left))
	}
}

package bot_test

import (
	"context"
	"errors"
	"slices"
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
		if _, err := d.DeliverDue(ctx); err != nil || len(forge.Effects()) != 0 {
			t.Fatalf("pass while GitLab is down: %d forge effects delivered, %v", len(forge.Effects()), err)
		}
		r.clock.Advance(10 * time.Minute)
	}
	if len(chat.Messages()) == 0 {
		t.Error("GitLab's outage held back the chat posts")
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

// TestChatOutageDoesNotHoldTheGate: with chat answering 503 for the whole
// outage, GitLab still gets the pending status, first of its effects, and
// every later one in order; chat catches up in order once it is back.
func TestChatOutageDoesNotHoldTheGate(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	chat := &bottest.Chat{}
	chatDown := true
	chat.Fail = func(m bot.Message) error {
		if chatDown {
			return errors.New("503 service unavailable")
		}
		return nil
	}
	d := bot.NewDispatcher(r.db, forge, chat, nil, r.clock, nil)
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	effs := forge.Effects()
	if len(effs) == 0 || effs[0].Kind != bot.EffectStatus || effs[0].Status != bot.StatusPending {
		t.Fatalf("forge effects during a chat outage = %v; want the pending status first", kinds(effs))
	}
	if got := kinds(effs); !slices.Equal(got, []string{"status", "mr_note", "mr_labels"}) {
		t.Errorf("forge effects = %v, want status, note, labels", got)
	}
	for _, line := range []string{"/threatgate artifact threat-model https://wiki/tm", "/approve ok"} {
		who := "UANN"
		if strings.HasPrefix(line, "/approve") {
			who = "UALICE"
		}
		if _, err := r.eng.Handle(ctx, command(t, "slack", who, line, "ESC-1")); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(time.Minute)
		if _, err := d.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := statuses(forge.Effects()); len(got) < 2 || got[0] != "pending@aaa" || got[len(got)-1] != "success@aaa" {
		t.Errorf("statuses during the chat outage = %v, want pending first and success last", got)
	}
	if len(chat.Messages()) != 0 {
		t.Fatalf("chat got %d messages while down", len(chat.Messages()))
	}
	chatDown = false
	r.clock.Advance(10 * time.Minute)
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := chat.Messages()
	if len(msgs) == 0 || !msgs[0].Summary {
		t.Fatalf("after the outage chat got %d messages; want the summary first", len(msgs))
	}
	if last := msgs[len(msgs)-1]; !strings.Contains(last.Text, "approved") && !last.Summary {
		t.Errorf("chat's last message %q, want the approval (or its summary) last", last.Text)
	}
	if left, _ := r.db.PendingEffects(ctx, 0); len(left) != 0 {
		t.Errorf("%d effects left", len(left))
	}
}

func kinds(effs []bot.Effect) []string {
	var out []string
	for _, e := range effs {
		out = append(out, string(e.Kind))
	}
	return out
}

// TestThreadReferencesAreKept: the reference the first post of a thread
// returns is stored per escalation and sink, and every later post (by a
// new dispatcher too, as after a restart) carries it.
func TestThreadReferencesAreKept(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	chat := &bottest.Chat{}
	d := bot.NewDispatcher(r.db, &bottest.Forge{}, chat, nil, r.clock, nil)
	d.Threads = r.db
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := chat.Messages()
	if len(msgs) < 2 || msgs[0].Thread != (bot.MessageRef{}) || !msgs[0].Summary {
		t.Fatalf("first message %+v; want the summary, opening the thread", msgs)
	}
	want := bot.MessageRef{Channel: "test", TS: "1"}
	for _, m := range msgs[1:] {
		if m.Thread != want {
			t.Errorf("later message %q carries thread %+v, want %+v", m.Text, m.Thread, want)
		}
	}
	// A new dispatcher (a restart) posts into the same thread.
	d2 := bot.NewDispatcher(r.db, &bottest.Forge{}, chat, nil, r.clock, nil)
	d2.Threads = r.db
	if _, err := r.eng.Handle(ctx, command(t, "slack", "UANN", "/threatgate artifact threat-model https://wiki/tm", "ESC-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	all := chat.Messages()
	if last := all[len(all)-1]; len(all) == len(msgs) || last.Thread != want {
		t.Errorf("after a restart: %d messages, last carries %+v, want %+v", len(all), last.Thread, want)
	}
}

// TestPanicInASinkIsSetAside: a sink that panics on one effect does not
// stop the dispatcher; the effect is set aside as a dead letter and the
// rest goes out.
func TestPanicInASinkIsSetAside(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	forge.Fail = func(e bot.Effect) error {
		if e.Kind == bot.EffectMRNote {
			panic("nil map in the renderer")
		}
		return nil
	}
	d := bot.NewDispatcher(r.db, forge, nil, nil, r.clock, nil)
	d.DeadLetters = r.db
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kinds(forge.Effects()); !slices.Equal(got, []string{"status", "mr_labels"}) {
		t.Errorf("forge effects = %v, want the status and the labels (the note set aside)", got)
	}
	got, err := r.db.DeadLetters(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != "effect" || !got[0].Panic || !strings.Contains(got[0].Reason, "nil map") || len(got[0].Payload) == 0 || got[0].Escalation != "ESC-1" {
		t.Errorf("dead letters = %+v", got)
	}
	if left, _ := r.db.PendingEffects(ctx, 0); len(left) != 0 {
		t.Errorf("%d effects left (the poison one must not replay)", len(left))
	}
}

// TestNoOlderStatusAfterAnEscalationOpens: a "no review needed" success
// answered to a status check before the MR had an escalation, parked after
// a permanent failure, never lands after the escalation's pending status on
// the same head (it did: the gate ended green on an MR awaiting artifacts).
func TestNoOlderStatusAfterAnEscalationOpens(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	forge := &bottest.Forge{}
	broken := true
	forge.Fail = func(e bot.Effect) error {
		if broken && e.Kind == bot.EffectStatus {
			return permanent{}
		}
		return nil
	}
	d := bot.NewDispatcher(r.db, forge, nil, nil, r.clock, nil)
	check := mrInput(12, "aaa", r.clock.Now(), "README.md")
	check.MR.AnswerCheck = true
	if _, err := r.eng.Handle(ctx, check); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	broken = false
	r.clock.Advance(time.Minute)
	// The same head now classifies (a label, a policy change): ESC-1 opens.
	if _, err := r.eng.Handle(ctx, mrInput(12, "aaa", r.clock.Now(), "internal/auth/session.go")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(6 * time.Hour)
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	got := statuses(forge.Effects())
	if len(got) == 0 || got[len(got)-1] != "pending@aaa" {
		t.Errorf("statuses delivered in order %v; the gate must end pending on aaa", got)
	}
	if left, _ := r.db.PendingEffects(ctx, 0); len(left) != 0 {
		t.Errorf("%d effects left", len(left))
	}
}

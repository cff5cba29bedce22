package bot_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// review16Store is the rig's store with two interleaving points: the
// first FindEscalation after arm blocks until release, and FindOpen runs
// onFindOpen after reading (once).
type review16Store struct {
	*store.DB
	mu         sync.Mutex
	armed      bool
	blocked    chan struct{}
	release    chan struct{}
	onFindOpen func()
}

func (s *review16Store) FindEscalation(ctx context.Context, id string) (*bot.Escalation, error) {
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if armed {
		close(s.blocked)
		<-s.release
	}
	return s.DB.FindEscalation(ctx, id)
}

func (s *review16Store) FindOpen(ctx context.Context) ([]*bot.Escalation, error) {
	open, err := s.DB.FindOpen(ctx)
	s.mu.Lock()
	f := s.onFindOpen
	s.onFindOpen = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return open, err
}

func review16Wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
		panic("unreachable")
	}
}

// TestReview16TickMarkSetOverACommitInTheClearedWindow: retickUnlessMarked
// clears the mark, recomputes, then sets the mark unconditionally. A
// commit of a projection computed under another policy that lands while
// the mark is cleared ("") clears nothing (store/commit.go only deletes a
// mark that is there), and when it lands after retick read ESC-1, the
// retick's own commit of ESC-1 conflicts and is skipped (ErrConflict is
// ignored). The mark is then set to the new policy although ESC-1 was last
// computed under the old one: every later start under this policy and
// binary trusts the mark and never recomputes ESC-1.
//
// Here: the engine runs under P2 (appsec has dave); a command handled
// under P2 (its policy read before SetPolicy) commits while Tick under P1
// recomputes. Afterwards the mark says P1 and ESC-1 still waits on dave.
func TestReview16TickMarkSetOverACommitInTheClearedWindow(t *testing.T) {
	r := newSweepRig(t)
	ctx := r.ctx
	p1 := r.Policy
	p2, err := policies.Load("p2.yaml", []byte(strings.Replace(sweepPolicy, "appsec: {members: [alice]", "appsec: {members: [alice, dave]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r.open()
	if err := r.cmd("ann", "/threatgate artifact ESC-1 threat-model https://wiki/tm"); err != nil {
		t.Fatal(err)
	}

	s := &review16Store{DB: r.DB}
	e := bot.NewEngine(s, p2, r.Clock, nil)
	e.SetBuild("b1")
	r.Clock.Advance(time.Minute)
	if _, err := e.Tick(ctx, r.Clock.Now()); err != nil { // the mark: P2, b1
		t.Fatal(err)
	}
	if mark, _ := r.DB.TickedUnder(ctx); mark != bot.TickMark(p2, "b1") {
		t.Fatalf("setup: mark %q", mark)
	}

	// A command under P2 reads the policy, then waits in its load.
	s.mu.Lock()
	s.armed, s.blocked, s.release = true, make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	c, err := bot.ParseCommand("/threatgate dissent the rollout plan is thin")
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan error, 1)
	go func() {
		_, err := e.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "carol", Surface: "web"}, Command: &c, Escalation: "ESC-1"})
		handled <- err
	}()
	review16Wait(t, s.blocked, "the command to load ESC-1")

	// The policy changes to P1; the next sweep recomputes under P1. Right
	// after it read the open escalations (the mark cleared), the command
	// under P2 commits.
	e.SetPolicy(p1)
	s.mu.Lock()
	s.onFindOpen = func() {
		if mark, _ := r.DB.TickedUnder(ctx); mark != "" && !strings.HasPrefix(mark, "pending ") {
			t.Errorf("setup: mark %q during the recompute, want cleared or pending", mark)
		}
		close(s.release)
		if err := review16Wait(t, handled, "the command under P2"); err != nil {
			t.Errorf("command under P2: %v", err)
		}
	}
	s.mu.Unlock()
	r.Clock.Advance(time.Minute)
	if _, err := e.Tick(ctx, r.Clock.Now()); err != nil {
		t.Fatal(err)
	}

	mark, err := r.DB.TickedUnder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	esc := r.esc()
	want := bot.WaitingOn(esc, p1)
	if mark == bot.TickMark(p1, "b1") && !slices.Equal(esc.WaitedOn, want) {
		t.Errorf("the mark says every open escalation was computed under P1 by b1, but ESC-1 waits on %v (computed under P2), P1 says %v: the next start under P1 never recomputes it", esc.WaitedOn, want)
	}
	if mark == bot.TickMark(p1, "b1") {
		if groups := bot.HeldGroups(esc, p1, want); !slices.Equal(esc.HeldByGroups, groups) {
			t.Errorf("held by groups %v, P1 says %v", esc.HeldByGroups, groups)
		}
	}
}

package bot_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// markStore is the real store, counting the reads of every open
// escalation (the retick's), which fail on demand.
type markStore struct {
	*store.DB
	findOpen atomic.Int32
	fail     atomic.Bool
}

func (s *markStore) FindOpen(ctx context.Context) ([]*bot.Escalation, error) {
	s.findOpen.Add(1)
	if s.fail.Load() {
		return nil, errors.New("disk gone")
	}
	return s.DB.FindOpen(ctx)
}

// TestRestartSkipsRetickUnderTheSameMark: a restart under the same policy
// bytes and the same binary does not read every open escalation again; a
// new policy, a new binary or an unknown binary does; a retick cut short
// is done again by the next start even under the old policy.
func TestRestartSkipsRetickUnderTheSameMark(t *testing.T) {
	r := testrig.NewRig(t, enginePolicy)
	ctx := context.Background()
	for i := range 3 {
		if _, err := r.Engine.Handle(ctx, mrInput(int64(20+i), "aaa"+string(rune('a'+i)), r.Clock.Now(), "internal/auth/session.go")); err != nil {
			t.Fatal(err)
		}
	}
	other, err := policies.Load("test.yaml", []byte(strings.Replace(enginePolicy, "    artifacts: [threat-model]\n", "    artifacts: [threat-model]\n    page_on_lapse: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	start := func(pol *policies.Policy, build string) *markStore {
		t.Helper()
		s := &markStore{DB: r.DB}
		eng := bot.NewEngine(s, pol, r.Clock, nil)
		eng.SetBuild(build)
		if _, err := eng.Tick(ctx, r.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Tick(ctx, r.Clock.Now()); err != nil { // never twice in a process
			t.Fatal(err)
		}
		return s
	}
	for _, step := range []struct {
		what   string
		pol    *policies.Policy
		build  string
		retick bool
	}{
		{"first start", r.Policy, "b1", true},
		{"restart, same policy and binary", r.Policy, "b1", false},
		{"restart, new binary", r.Policy, "b2", true},
		{"restart, new policy", other, "b2", true},
		{"restart, policy back", r.Policy, "b2", true},
		{"restart, binary unknown", r.Policy, "", true},
		{"restart after an unknown binary", r.Policy, "b2", true},
		{"restart again", r.Policy, "b2", false},
	} {
		s := start(step.pol, step.build)
		if got := s.findOpen.Load() == 1; got != step.retick || s.findOpen.Load() > 1 {
			t.Errorf("%s: read the open escalations %d times, want retick %v", step.what, s.findOpen.Load(), step.retick)
		}
	}

	// A retick under a new policy that fails clears the mark: it may have
	// committed some escalations' new ticks before failing, so the next
	// start, even under the old policy, must retick, not trust the mark.
	s := &markStore{DB: r.DB}
	s.fail.Store(true)
	eng := bot.NewEngine(s, other, r.Clock, nil)
	eng.SetBuild("b2")
	if _, err := eng.Tick(ctx, r.Clock.Now()); err == nil {
		t.Fatal("a retick whose read fails succeeded")
	}
	if mark, err := r.DB.TickedUnder(ctx); err != nil || mark == bot.TickMark(other, "b2") || mark == bot.TickMark(r.Policy, "b2") {
		t.Errorf("after a failed retick the mark is %q, %v; want none that a start trusts", mark, err)
	}
	if s := start(r.Policy, "b2"); s.findOpen.Load() != 1 {
		t.Errorf("restart after a failed retick read the open escalations %d times, want 1", s.findOpen.Load())
	}
	if mark, _ := r.DB.TickedUnder(ctx); mark != bot.TickMark(r.Policy, "b2") {
		t.Errorf("mark = %q, want %q", mark, bot.TickMark(r.Policy, "b2"))
	}
}

func TestTickMark(t *testing.T) {
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	if pol.Digest == "" {
		t.Fatal("the default policy has no digest")
	}
	for _, tt := range []struct {
		pol   *policies.Policy
		build string
		want  string
	}{
		{pol, "b1", "policy " + pol.Digest + " build b1"},
		{pol, "", ""},
		{&policies.Policy{}, "b1", ""},
		{nil, "b1", ""},
	} {
		if got := bot.TickMark(tt.pol, tt.build); got != tt.want {
			t.Errorf("TickMark(%v, %q) = %q, want %q", tt.pol != nil, tt.build, got, tt.want)
		}
	}
}

package bot

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func backlogPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	p, err := policies.Load("test.yaml", []byte(testPolicyYAML+"backlog: {peak_open_threshold: 5, max_deferral: 14d}\n"))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return p
}

// TestDeferralUnderLoad: a deferral needs the backlog at its peak (or a
// member of caps.override_group) and reaches no further than
// backlog.max_deferral; the gate stays pending while deferred.
func TestDeferralUnderLoad(t *testing.T) {
	pol := backlogPolicy(t)
	inReview := []Input{mrIn(action(MROpen), paths("src/auth/login.go")), cmd(t, "ann", "/threatgate artifact threat-model x")}
	_, esc := history(t, pol, Quota{}, inReview...)
	now := t0.Add(time.Hour) // 2026-11-02 10:00 UTC
	for _, tt := range []struct {
		name string
		open int
		who  string
		line string
		err  string
	}{
		{"below the peak", 4, "alice", "/threatgate defer 3d vendor", "deferrals are for peaks of load: 4 escalations are open, and the policy allows deferring from 5 on (backlog.peak_open_threshold); below it only members of leads may defer. Review ESC-1 now"},
		{"at the peak", 5, "alice", "/threatgate defer 3d vendor", ""},
		{"the override group below the peak", 1, "dave", "/threatgate defer 3d vendor", ""},
		{"a duration past max_deferral", 9, "alice", "/threatgate defer 15d vendor", "is more than the 2w the policy allows (backlog.max_deferral); defer until 2026-11-16 10:00 UTC at the latest"},
		{"a date within max_deferral", 9, "alice", "/threatgate defer 2026-11-16 vendor", ""},
		{"a date past max_deferral", 9, "alice", "/threatgate defer 2026-11-17 vendor", "2026-11-17 is more than the 2w the policy allows"},
		{"the override group is bound by max_deferral too", 9, "dave", "/threatgate defer 3w vendor", "the policy allows (backlog.max_deferral)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs, effs, err := decide(Given{Esc: esc, OpenCount: tt.open}, pol, cmd(t, tt.who, tt.line), now)
			if tt.err != "" {
				if p, ok := IsProblem(err); !ok || !strings.Contains(p.Error(), tt.err) {
					t.Fatalf("err = %v, want a Problem containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want accepted", err)
			}
			if i := slices.IndexFunc(evs, func(e Event) bool { return e.Kind == EventDeferred }); i < 0 {
				t.Fatalf("no deferral among %v", evs)
			}
			// The gate stays pending while deferred.
			i := slices.IndexFunc(effs, func(e Effect) bool { return e.Kind == EffectStatus })
			if i < 0 || effs[i].Status != StatusPending || !strings.Contains(effs[i].Text, "deferred until") {
				t.Errorf("status effects: %+v, want pending, deferred", effs)
			}
			deferred := Replay(append(slices.Clone(historyEvents(t, pol, inReview...)), evs...))
			if st, _ := (&decision{pol: pol, now: now, esc: deferred}).gate(deferred); st != StatusPending {
				t.Errorf("gate of a deferred escalation = %s, want pending", st)
			}
		})
	}

	// Without a backlog section, nothing changes: any load, up to 90 days.
	plain := testPolicy(t)
	if _, _, err := decide(Given{Esc: esc}, plain, cmd(t, "alice", "/threatgate defer 60d vendor"), now); err != nil {
		t.Errorf("deferral without backlog rules: %v", err)
	}
	if _, _, err := decide(Given{Esc: esc}, plain, cmd(t, "alice", "/threatgate defer 91d vendor"), now); err == nil {
		t.Error("a deferral past 90 days was accepted")
	}
}

// historyEvents is history's events, stamped with ESC-1.
func historyEvents(t testing.TB, pol *policies.Policy, ins ...Input) []Event {
	t.Helper()
	evs, _ := history(t, pol, Quota{}, ins...)
	return evs
}

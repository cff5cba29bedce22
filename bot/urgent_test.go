package bot

import (
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

// TestUrgentLabels: an MR labelled with one of urgent_labels opens as
// urgent; a label added later makes it urgent and tightens its deadlines,
// never loosens them; removing it changes nothing.
func TestUrgentLabels(t *testing.T) {
	pol, err := policies.Load("test.yaml", []byte(testPolicyYAML+"urgent_labels: [security::urgent, incident]\n"))
	if err != nil {
		t.Fatal(err)
	}
	// T2: decision 72h, urgent 18h; first response 24h (18h when urgent).
	const urgentWindow = 18 * time.Hour
	login := paths("src/auth/login.go")

	t.Run("opens urgent", func(t *testing.T) {
		evs, esc := history(t, pol, Quota{}, mrIn(action(MROpen), login, labels("bug", "incident")))
		if !esc.Urgent || !esc.DecisionDue.Equal(t0.Add(urgentWindow)) || !esc.FirstResponseDue.Equal(t0.Add(urgentWindow)) {
			t.Errorf("urgent %v, due %v, first response %v; want urgent, both due %v", esc.Urgent, esc.DecisionDue, esc.FirstResponseDue, t0.Add(urgentWindow))
		}
		if !evs[0].Data.Urgent {
			t.Error("the opened event does not say urgent")
		}
		if UrgentLabel(pol, []string{"bug", "incident"}) != "incident" || UrgentLabel(pol, []string{"Incident"}) != "" || UrgentLabel(nil, []string{"incident"}) != "" {
			t.Error("UrgentLabel: want exact names of the policy")
		}
	})

	t.Run("a label added later tightens the deadlines", func(t *testing.T) {
		_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), login))
		if esc.Urgent {
			t.Fatal("urgent without a label")
		}
		later := t0.Add(2 * time.Hour)
		evs, _, proj, err := decideProjection(Given{Esc: esc}, pol, mrIn(at(120), login, labels("security::urgent")), later)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(evs, func(e Event) bool { return e.Kind == EventMRUpdated })
		if i < 0 || !evs[i].Data.Urgent {
			t.Fatalf("events %+v, want an mr_updated that says urgent", evs)
		}
		if !proj.Urgent || !proj.DecisionDue.Equal(later.Add(urgentWindow)) || !proj.FirstResponseDue.Equal(later.Add(urgentWindow)) {
			t.Errorf("urgent %v, due %v, first response %v; want both %v", proj.Urgent, proj.DecisionDue, proj.FirstResponseDue, later.Add(urgentWindow))
		}
		// What decide left is what the log replays to.
		if got := apply(esc, evs[i]); !got.DecisionDue.Equal(proj.DecisionDue) || !got.Urgent {
			t.Errorf("replayed: urgent %v, due %v", got.Urgent, got.DecisionDue)
		}

		// Removed again: it stays urgent, nothing moves.
		evs, _, again, err := decideProjection(Given{Esc: proj}, pol, mrIn(at(180), login), later.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Urgent || !again.DecisionDue.Equal(proj.DecisionDue) {
			t.Errorf("after the label went: urgent %v, due %v; want urgent, due %v (events %+v)", again.Urgent, again.DecisionDue, proj.DecisionDue, evs)
		}
	})

	t.Run("never loosens", func(t *testing.T) {
		_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), login))
		late := t0.Add(60 * time.Hour) // 12h left, less than the urgent window
		_, _, proj, err := decideProjection(Given{Esc: esc}, pol, mrIn(at(3600), login, labels("incident")), late)
		if err != nil {
			t.Fatal(err)
		}
		if !proj.Urgent || !proj.DecisionDue.Equal(esc.DecisionDue) || !proj.FirstResponseDue.Equal(esc.FirstResponseDue) {
			t.Errorf("urgent %v, due %v, first response %v; want urgent with the deadlines as they were (%v, %v)",
				proj.Urgent, proj.DecisionDue, proj.FirstResponseDue, esc.DecisionDue, esc.FirstResponseDue)
		}
	})

	t.Run("a draft becomes urgent and is filed with the urgent window", func(t *testing.T) {
		_, esc := history(t, pol, Quota{}, cmd(t, "erin", "/escalate g/p!1 --tier T2 odd docs"))
		if esc.State != StateIntake {
			t.Fatalf("state %s, want intake", esc.State)
		}
		_, _, proj, err := decideProjection(Given{Esc: esc}, pol, mrIn(at(5), paths("docs/x.md"), labels("incident")), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !proj.Urgent || !proj.DecisionDue.IsZero() {
			t.Errorf("draft: urgent %v, due %v; want urgent without deadlines", proj.Urgent, proj.DecisionDue)
		}
		filedAt := t0.Add(2 * time.Hour)
		_, _, filed, err := decideProjection(Given{Esc: proj}, pol, cmd(t, "erin", "/threatgate intake\nsummary: s\nassets: a\nexploit: e"), filedAt)
		if err != nil {
			t.Fatal(err)
		}
		if !filed.DecisionDue.Equal(filedAt.Add(urgentWindow)) {
			t.Errorf("filed: due %v, want %v", filed.DecisionDue, filedAt.Add(urgentWindow))
		}
	})

	t.Run("a closed or merged MR is not marked", func(t *testing.T) {
		_, esc := history(t, pol, Quota{}, mrIn(action(MROpen), login))
		evs, _, _, err := decideProjection(Given{Esc: esc}, pol, mrIn(action(MRClose), at(5), login, labels("incident")), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Data.Urgent {
				t.Errorf("closing marked it urgent: %+v", ev)
			}
		}
	})
}

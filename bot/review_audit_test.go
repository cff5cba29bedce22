package bot

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReviewAuditValidationOfAScoreNeverSeen: a validator who wrote
// "/threatgate risk --validate" while the score was 6 validates the score
// recorded after they wrote it (8, by someone else): the validation is
// bound to nothing the validator saw (neither the score, nor the time of
// the assessment), so a second person is recorded as having checked a
// score and controls they never read. A validation written before the
// current score was recorded should be refused, as a head-bound command
// written before the head moved is.
func TestReviewAuditValidationOfAScoreNeverSeen(t *testing.T) {
	pol := validatorsPolicy(t)
	_, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
		cmd(t, "ann", "/threatgate artifact threat-model x"),
		cmd(t, "ann", "/threatgate artifact rollback-plan y"),
		cmd(t, "alice", `/threatgate risk likelihood=2 impact=3 controls="WAF rule" internal only`), // t0+3m
		cmd(t, "bob", `/threatgate risk likelihood=2 impact=4 controls="none" rescored`),            // t0+4m
	)
	if esc.Risk == nil || esc.Risk.Score != 8 {
		t.Fatalf("risk = %+v, want bob's 8", esc.Risk)
	}
	in := cmd(t, "vic", "/threatgate risk --validate checked the WAF rule")
	in.WrittenAt = t0.Add(3*time.Minute + 30*time.Second) // seeing alice's 6
	evs, _, err := decide(Given{Esc: esc}, pol, in, t0.Add(5*time.Minute))
	if err == nil {
		for _, ev := range evs {
			if ev.Kind == EventRiskValidated {
				t.Errorf("vic's validation, written at %s when the score was 6, validated score %d recorded at %s", in.WrittenAt.Format("15:04:05"), ev.Data.Risk, esc.Risk.At.Format("15:04:05"))
			}
		}
	}
}

// TestReviewAuditMarkdownPipeInArtifactLink: an artifact's link is written
// as an autolink when webURL accepts it, and webURL lets '|' and '*'
// through; inside the artifacts table a '|' ends the cell, so an MR author
// who hands in "https://x/|**...**|" adds cells of their own Markdown to
// the evidence bundle (here, bold text claiming an approval).
func TestReviewAuditMarkdownPipeInArtifactLink(t *testing.T) {
	pol := testPolicy(t)
	ref := "https://evil.example/tm|**APPROVED_BY_CISO**|"
	events, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
		cmd(t, "ann", "/threatgate artifact threat-model "+ref),
	)
	for i := range events {
		events[i].Seq = uint64(i + 1)
	}
	b := BuildBundle(esc, events)
	files, err := RenderExport(NewExport(t0, t0.Add(48*time.Hour), []*Bundle{b}), "md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name != BundleFile("ESC-1", "md") {
			continue
		}
		for _, line := range strings.Split(string(f.Data), "\n") {
			if strings.Contains(line, "evil.example") && strings.Contains(line, "|**APPROVED") {
				t.Errorf("artifact link breaks out of its table cell, unescaped:\n%s", line)
			}
		}
		return
	}
	t.Fatal("no ESC-1.md")
}

// TestReviewAuditIncidentOnAnUnmergedMR: docs/SECURITY.md lets people
// "record an incident on a merged MR"; an MR whose escalation is still in
// review (never merged) takes one all the same, and it counts in the
// incident figures of the weekly report and the dashboard.
func TestReviewAuditIncidentOnAnUnmergedMR(t *testing.T) {
	pol := testPolicy(t)
	esc := &Escalation{ID: "ESC-4", Project: "g/p", MRIID: 1, Tier: "T3", Score: 100, State: StateInReview, MRState: "opened"}
	in := cmd(t, "ann", "/threatgate incident g/p!1 keys logged")
	evs, _, err := decide(Given{Esc: esc, IncidentID: "INC-1"}, pol, in, t0)
	if err == nil && len(evs) > 0 {
		t.Errorf("an incident (%s on %s) was recorded on g/p!1, whose MR is %s and escalation %s (never merged)", evs[0].Data.Incident, evs[0].Data.EscalationID, esc.MRState, esc.State)
	}
}

// reviewAuditStore is an ExportStore over one escalation's events.
type reviewAuditStore struct{ events []Event }

func (s reviewAuditStore) EventsBetween(_ context.Context, from, to time.Time) ([]Event, error) {
	var out []Event
	for _, ev := range s.events {
		if !ev.At.Before(from) && ev.At.Before(to) {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (s reviewAuditStore) Events(_ context.Context, id string) ([]Event, error) {
	var out []Event
	for _, ev := range s.events {
		if ev.Escalation == id {
			out = append(out, ev)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// TestReviewAuditCloseReopenHidesABypassFromExports: the "decision" of an
// escalation is its first decision event, and closing the MR is one (a
// withdrawal). So whoever can close and reopen the MR (its author) makes
// the escalation "decided" (withdrawn) in the window of the close; its
// merge without approval a month later is in no window: December's
// export does not list it, and the bundle's decision reads "withdrawn"
// for an MR that was merged past the gate. An auditor reading the period
// exports never sees the bypass.
func TestReviewAuditCloseReopenHidesABypassFromExports(t *testing.T) {
	pol := testPolicy(t)
	nov := t0 // 2026-11-02
	dec := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	steps := []struct {
		in Input
		at time.Time
	}{
		{mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()), nov},
		{mrIn(action(MRClose), paths("src/auth/login.go"), secretLine()), nov.Add(time.Minute)},
		{mrIn(action(MRReopen), paths("src/auth/login.go"), secretLine()), nov.Add(2 * time.Minute)},
		{mrIn(action(MRMerge), paths("src/auth/login.go"), secretLine()), dec},
	}
	var all []Event
	var esc *Escalation
	for i, s := range steps {
		evs, _, err := decide(Given{Esc: esc}, pol, s.in, s.at)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for _, ev := range evs {
			if ev.Kind.Personal() {
				continue
			}
			if ev.Escalation == "" {
				ev.Escalation = "ESC-1"
			}
			ev.Seq = uint64(len(all) + 1)
			all = append(all, ev)
			esc = apply(esc, ev)
		}
	}
	if esc == nil || esc.State != StateMerged || !esc.Bypassed {
		t.Fatalf("escalation = %+v, want merged, bypassed", esc)
	}
	st := reviewAuditStore{all}
	x, err := ExportOf(context.Background(), st, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Bundles) == 0 {
		t.Errorf("December's export lists no escalation, yet ESC-1 was merged past its gate (bypassed) on %s", dec.Format(time.DateOnly))
	}
	if d := DecisionOf(all); d == nil || d.Kind != DecidedBypassed {
		t.Errorf("DecisionOf = %+v, want bypassed: the bundle's decision hides the bypass", d)
	}
}

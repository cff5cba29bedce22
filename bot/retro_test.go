package bot_test

// The quarterly retrospective on a seeded history: a real store, the
// engine's commands, and a read of the quarter's window only.

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/internal/testrig"
)

const retroPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: crypto, category: cryptography, weight: 100, when: {paths: ["**/crypto/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    first_response: 4h
    decision: 48h
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    first_response: 2h
    decision: 24h
groups:
  appsec: {members: [alice, bob]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, email: alice@example.com}
  - {gitlab: bob, slack: UBOB, email: bob@example.com}
`

// newRetroRig is a reportRig over retroPolicy.
func newRetroRig(t *testing.T) *reportRig {
	t.Helper()
	r := testrig.NewRig(t, retroPolicy)
	st := &watched{DB: r.DB, t: t}
	return &reportRig{Rig: r, t: t, st: st, eng: bot.NewEngine(st, r.Policy, r.Clock, nil), chat: &bottest.Chat{}}
}

// seedRetro plays November 2026 (2026Q4):
//   - ESC-1..5 (T2, auth): threat model handed in, approved within hours:
//     auth fires often and never leads to a rejection or a change;
//   - ESC-6, ESC-7 (T3, crypto): nobody hands in the threat model, the
//     decision deadlines pass while awaiting artifacts;
//   - ESC-8 (T3, crypto): threat model in, the deadline passes in review,
//     rejected two days late;
//   - INC-1 on ESC-1's MR (a near miss), INC-2 on an MR never escalated.
func seedRetro(r *reportRig) {
	for i := int64(1); i <= 5; i++ {
		r.mr(i, "aaa00"+string(rune('0'+i)), "internal/auth/session.go")
		r.Clock.Advance(time.Hour)
		r.say("UANN", "/threatgate artifact ESC-"+string(rune('0'+i))+" threat-model https://wiki.example.com/tm")
		r.say("UALICE", "/approve ESC-"+string(rune('0'+i))+" looks right")
		r.Clock.Advance(time.Hour)
	}
	r.Clock.Set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	r.mr(6, "ccc006", "lib/crypto/cipher.go")
	r.mr(7, "ccc007", "lib/crypto/kdf.go")
	r.mr(8, "ccc008", "lib/crypto/mac.go")
	r.say("UANN", "/threatgate artifact ESC-8 threat-model https://wiki.example.com/tm-8")
	r.Clock.Set(time.Date(2026, 11, 9, 9, 0, 0, 0, time.UTC))
	r.say("UBOB", "/threatgate reject ESC-8 the MAC is not constant time")
	r.Clock.Set(time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC))
	r.say("UANN", "/threatgate incident shop/api!1 session fixation")
	r.say("UANN", "/threatgate incident shop/api!99 open redirect in the login page")
	r.Clock.Set(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
}

func TestRetroOfSeededHistory(t *testing.T) {
	r := newRetroRig(t)
	seedRetro(r)
	ctx := context.Background()
	got, err := bot.RetroOf(ctx, r.st, 2026, 4, r.Clock.Now(), r.Policy)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if len(r.st.windows) != 1 || !r.st.windows[0][0].Equal(from) || !r.st.windows[0][1].Equal(from.AddDate(0, 3, 0)) {
		t.Errorf("read the log over %v, want the quarter from %v", r.st.windows, from)
	}
	if !got.Partial || got.Name() != "2026Q4" {
		t.Errorf("Partial = %v, Name = %q", got.Partial, got.Name())
	}
	wantTiers := []bot.TierOutcome{
		{Tier: "T3", Name: "critical", Opened: 3, Rejected: 1, Breached: 3, Due: 3},
		{Tier: "T2", Name: "high", Opened: 5, Approved: 5, Due: 5},
	}
	if !reflect.DeepEqual(got.Tiers, wantTiers) {
		t.Errorf("Tiers:\n got %+v\nwant %+v", got.Tiers, wantTiers)
	}
	if len(got.Missing) != 1 || got.Missing[0].Kind != "threat-model" || !reflect.DeepEqual(got.Missing[0].Escalations, []string{"ESC-6", "ESC-7"}) {
		t.Errorf("Missing = %+v, want threat-model on ESC-6, ESC-7", got.Missing)
	}
	stalled := map[bot.State]int{bot.StateAwaitingArtifacts: 2, bot.StateInReview: 1}
	if !reflect.DeepEqual(got.Stalled, stalled) {
		t.Errorf("Stalled = %v, want %v", got.Stalled, stalled)
	}
	if len(got.NearMisses) != 1 || got.NearMisses[0].Escalation != "ESC-1" || got.NearMisses[0].Incident != "INC-1" {
		t.Errorf("NearMisses = %+v, want INC-1 on ESC-1", got.NearMisses)
	}
	var kinds []string
	for _, s := range got.Suggestions {
		kinds = append(kinds, s.Kind+" "+s.Subject)
	}
	want := []string{"noise_signal auth", "missing_signal shop/api!99", "tier_deadline_breached T3"}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("Suggestions = %q, want %q", kinds, want)
	}
	if ev := got.Suggestions[0].Evidence; len(ev.Escalations) != 5 || ev.Counts["fired"] != 5 {
		t.Errorf("noise evidence = %+v, want the 5 escalations", ev)
	}
	if ev := got.Suggestions[1].Evidence; !reflect.DeepEqual(ev.Incidents, []string{"INC-2"}) || ev.Note == "" {
		t.Errorf("missing-signal evidence = %+v, want INC-2 and a note on paths", ev)
	}

	// The text, against its golden file.
	text := bot.RenderRetroText(got) + "\n"
	golden := filepath.Join("testdata", "retro", "seeded.golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" { // text_test.go defines -update
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantText, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(wantText) {
		t.Errorf("text differs from %s (-update rewrites it):\n%s", golden, text)
	}

	// A quarter before anything happened: empty, not partial.
	empty := bot.BuildRetro(nil, 2026, 1, r.Clock.Now(), r.Policy)
	if empty.Partial || len(empty.Tiers) != 0 || len(empty.Suggestions) != 0 {
		t.Errorf("empty quarter = %+v", empty)
	}
}

func TestParseQuarter(t *testing.T) {
	for _, tt := range []struct {
		in      string
		year, q int
		err     string
	}{
		{"2026Q4", 2026, 4, ""},
		{" 2027q1", 2027, 1, ""},
		{"2026-Q2", 2026, 2, ""},
		{"2026Q5", 0, 0, "quarters 1 to 4, not 5"},
		{"Q4 2026", 0, 0, `want a quarter such as "2026Q4", got "Q4 2026"`},
		{"", 0, 0, "want a quarter"},
	} {
		y, q, err := bot.ParseQuarter(tt.in)
		if tt.err != "" {
			if p, ok := bot.IsProblem(err); !ok || !strings.Contains(p.Error(), tt.err) {
				t.Errorf("ParseQuarter(%q) err = %v, want a Problem with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || y != tt.year || q != tt.q {
			t.Errorf("ParseQuarter(%q) = %d, %d, %v; want %d, %d", tt.in, y, q, err, tt.year, tt.q)
		}
	}
}

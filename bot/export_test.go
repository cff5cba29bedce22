package bot

// Evidence bundles as pure functions: the tier definition recorded with
// the escalation (TierSnapshot on its events, folded by apply), which
// event decides an escalation, BuildBundle and BuildControlSummary over
// hand-made and decided histories, and the escaping of each rendering. A
// legacy bundle's Markdown is diffed against testdata/export (go test
// ./bot -update rewrites it); cmd/threatgate's export tests run the whole
// export over a real store.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func TestTierSnapshotOnEvents(t *testing.T) {
	pol := testPolicy(t)
	events, esc := history(t, pol, Quota{},
		mrIn(paths("internal/auth/a.go")),                              // T2
		mrIn(sha("bbb222"), paths("internal/auth/a.go"), secretLine()), // raised to T3
		cmd(t, "dave", "/threatgate retier ESC-1 T2 the secret is a test fixture"),
	)
	want := map[EventKind]string{EventOpened: "T2", EventTierRaised: "T3", EventRetiered: "T2"}
	seen := 0
	for _, ev := range events {
		id, ok := want[ev.Kind]
		if !ok {
			continue
		}
		seen++
		if !reflect.DeepEqual(ev.Data.TierDef, SnapshotTier(pol, pol.Tier(id))) {
			t.Errorf("%s: TierDef = %+v, want the policy's %s", ev.Kind, ev.Data.TierDef, id)
		}
	}
	if seen != 3 {
		t.Fatalf("saw %d of the opening, tier raise and re-tier in %v", seen, kindsOf(events))
	}
	if esc.TierDef == nil || esc.TierDef.ID != "T2" {
		t.Errorf("projection TierDef = %+v, want T2's", esc.TierDef)
	}

	t3 := SnapshotTier(pol, pol.Tier("T3"))
	wantT3 := &TierSnapshot{
		ID: "T3", Name: "critical",
		Artifacts:       []ArtifactSpec{{ID: "threat-model", Name: "Threat model (STRIDE)"}, {ID: "rollback-plan", Name: "Rollback plan"}},
		Approvals:       []policies.Approval{{Group: "appsec", Count: 2, Role: "approver"}, {Group: "leads", Count: 1, Role: "risk-acceptance"}},
		Checklist:       []string{"data-sensitivity"},
		MaxResidualRisk: 9,
		FirstResponse:   t3.FirstResponse, Decision: t3.Decision, UrgentDecision: t3.UrgentDecision,
	}
	if !reflect.DeepEqual(t3, wantT3) {
		t.Errorf("SnapshotTier(T3) =\n%+v\nwant\n%+v", t3, wantT3)
	}
	if t3.Decision == "" || t3.FirstResponse == "" {
		t.Errorf("SnapshotTier(T3) has no deadlines: %+v", t3)
	}
	// It reads back from JSON as it was made (the store keeps it so).
	data, err := json.Marshal(t3)
	if err != nil {
		t.Fatal(err)
	}
	var back *TierSnapshot
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, t3) {
		t.Errorf("snapshot after JSON = %+v, want %+v", back, t3)
	}
	if SnapshotTier(pol, nil) != nil {
		t.Error("SnapshotTier(nil) is not nil")
	}
}

func kindsOf(events []Event) []EventKind {
	var out []EventKind
	for _, ev := range events {
		out = append(out, ev.Kind)
	}
	return out
}

// TestApplyTierDef: the projection's definition is the last one recorded
// with the tier; an event from before definitions were kept leaves it
// unknown, never the old tier's.
func TestApplyTierDef(t *testing.T) {
	t2 := &TierSnapshot{ID: "T2", Name: "high"}
	t3 := &TierSnapshot{ID: "T3", Name: "critical"}
	for _, tt := range []struct {
		name   string
		events []Event
		want   *TierSnapshot
	}{
		{"opened", []Event{{Kind: EventOpened, Data: EventData{Tier: "T2", TierDef: t2}}}, t2},
		{"raised", []Event{{Kind: EventOpened, Data: EventData{Tier: "T2", TierDef: t2}}, {Kind: EventTierRaised, Data: EventData{Tier: "T3", TierDef: t3}}}, t3},
		{"retiered", []Event{{Kind: EventOpened, Data: EventData{Tier: "T3", TierDef: t3}}, {Kind: EventRetiered, Data: EventData{Tier: "T2", TierDef: t2}}}, t2},
		{"legacy raise", []Event{{Kind: EventOpened, Data: EventData{Tier: "T2", TierDef: t2}}, {Kind: EventTierRaised, Data: EventData{Tier: "T3"}}}, nil},
		{"legacy opening", []Event{{Kind: EventOpened, Data: EventData{Tier: "T2"}}}, nil},
		{"other events keep it", []Event{{Kind: EventOpened, Data: EventData{Tier: "T2", TierDef: t2}}, {Kind: EventReclassified, Data: EventData{Score: 3}}, {Kind: EventMRUpdated, Data: EventData{Title: "x"}}}, t2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Replay(tt.events).TierDef; got != tt.want {
				t.Errorf("TierDef = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecisionOf(t *testing.T) {
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	opened := Event{Seq: 1, Kind: EventOpened, At: at(0), Data: EventData{To: StateInReview}}
	moved := func(seq uint64, h int, to State) Event {
		return Event{Seq: seq, Kind: EventStateChanged, Actor: "bob", At: at(h), SHA: "abc", Data: EventData{To: to}}
	}
	for _, tt := range []struct {
		name   string
		events []Event
		kind   string
		seq    uint64
		text   string
	}{
		{"never decided", []Event{opened, moved(2, 1, StateAwaitingArtifacts), moved(3, 2, StateDisputed), moved(4, 3, StateDeferred)}, "", 0, ""},
		{"approved", []Event{opened, moved(2, 1, StateApproved)}, DecidedApproved, 2, ""},
		{"the first decision counts", []Event{opened, moved(2, 1, StateApproved), moved(3, 2, StateInReview), moved(4, 3, StateRejected)}, DecidedApproved, 2, ""},
		{"rejected, with the reason", []Event{opened, {Seq: 2, Kind: EventRejected, At: at(1), Data: EventData{Text: "no"}}, moved(3, 1, StateRejected)}, DecidedRejected, 3, "no"},
		{"withdrawn, with the reason", []Event{opened, {Seq: 2, Kind: EventWithdrawn, At: at(1), Data: EventData{Text: "dup"}}, moved(3, 1, StateWithdrawn), moved(4, 2, StateApproved)}, DecidedWithdrawn, 3, "dup"},
		{"bypass", []Event{opened, {Seq: 2, Kind: EventMerged, At: at(1), Data: EventData{Bypassed: true}}, moved(3, 1, StateMerged)}, DecidedBypassed, 2, ""},
		{"merged after approval", []Event{opened, moved(2, 1, StateApproved), {Seq: 3, Kind: EventMerged, At: at(2)}}, DecidedApproved, 2, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := DecisionOf(tt.events)
			if tt.kind == "" {
				if d != nil {
					t.Errorf("DecisionOf = %+v, want none", d)
				}
				return
			}
			if d == nil || d.Kind != tt.kind || d.Seq != tt.seq || d.Text != tt.text {
				t.Errorf("DecisionOf = %+v, want %s at event %d, text %q", d, tt.kind, tt.seq, tt.text)
			}
		})
	}
}

// legacyEvents is an escalation recorded before tier definitions were
// kept: an opening without TierDef, an artifact, an approval, approved
// after its deadline.
func legacyEvents() []Event {
	ev := func(seq uint64, h int, kind EventKind, actor string, d EventData) Event {
		return Event{Seq: seq, Escalation: "ESC-9", Kind: kind, Actor: actor, At: t0.Add(time.Duration(h) * time.Hour), SHA: "abcdef0123456789",
			Data: d, Hash: strings.Repeat(string(rune('a'+seq%6)), 64), PrevHash: strings.Repeat(string(rune('a'+(seq-1)%6)), 64)}
	}
	return []Event{
		ev(3, 0, EventOpened, "system", EventData{Project: "g/p", MRIID: 9, MRURL: "https://gitlab.example.com/g/p/-/merge_requests/9", Title: "Rotate | keys <now>",
			Author: "ann", Tier: "T2", TierName: "high", Score: 40, To: StateAwaitingArtifacts,
			Signals:     []policies.Fired{{ID: "auth", Category: "access-control", Weight: 40, Evidence: []string{"internal/auth/a.go"}}},
			DecisionDue: t0.Add(24 * time.Hour)}),
		ev(7, 1, EventArtifactAdded, "ann", EventData{Artifact: "threat-model", Ref: "javascript:alert(1)"}),
		ev(8, 1, EventStateChanged, "ann", EventData{From: StateAwaitingArtifacts, To: StateInReview}),
		ev(12, 30, EventApproved, "bob", EventData{Group: "appsec", Role: "approver", Text: "ok\nsecond line", Checks: map[string]string{"b": "2", "a": "=1+1"}}),
		ev(13, 30, EventStateChanged, "bob", EventData{From: StateInReview, To: StateApproved}),
	}
}

func TestBuildBundleLegacy(t *testing.T) {
	events := legacyEvents()
	b := BuildBundle(Replay(events), events)
	if !reflect.DeepEqual(b, BuildBundle(nil, events)) {
		t.Error("BuildBundle(nil, events) differs from BuildBundle(Replay(events), events)")
	}
	if b.Tier.Definition != nil || len(b.Controls) != 0 || b.Controls == nil {
		t.Errorf("Definition = %+v, Controls = %#v; want none recorded, []", b.Tier.Definition, b.Controls)
	}
	if b.Decision.Kind != DecidedApproved || b.Decision.Seq != 13 || !b.Deadlines.Late {
		t.Errorf("Decision = %+v, Deadlines = %+v; want approved at 13, late", b.Decision, b.Deadlines)
	}
	var gaps []string
	for _, g := range b.Gaps {
		gaps = append(gaps, g.Kind)
	}
	if want := []string{GapNotRecorded, GapLate}; !slices.Equal(gaps, want) {
		t.Errorf("gaps = %q, want %q", gaps, want)
	}
	if got := b.Approvals[0].Checklist; !reflect.DeepEqual(got, []CheckAnswer{{"a", "=1+1"}, {"b", "2"}}) {
		t.Errorf("checklist = %+v, want a, b in name order (none recorded)", got)
	}
	if b.Approvals[0].Seq != 12 || b.Artifacts[0].Seq != 7 {
		t.Errorf("approval seq %d, artifact seq %d; want 12, 7", b.Approvals[0].Seq, b.Artifacts[0].Seq)
	}
	if c := b.Chain; c.FirstSeq != 3 || c.LastSeq != 13 || c.Events != 5 || c.LastHash != events[4].Hash {
		t.Errorf("chain = %+v", c)
	}

	// Every list is [] in JSON, never null, and the schema is named.
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "null") && !strings.Contains(string(data), `"definition":null`) {
		t.Errorf("JSON has a null list: %s", data)
	}
	var top map[string]json.RawMessage
	json.Unmarshal(data, &top)
	if string(top["schema"]) != `"threatgate.bundle/v1"` {
		t.Errorf("schema = %s", top["schema"])
	}

	golden(t, filepath.Join("testdata", "export", "legacy.md"), RenderBundleMarkdown(b))
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run go test ./bot -update)", path, err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./bot -update rewrites it):\n got %s\nwant %s", path, got, want)
	}
}

// TestBuildBundleDecided: a decided history through decide: the recorded
// definition gives the artifact names, the checklist order, the risk
// ceiling and the controls; what was never handed in is a gap.
func TestBuildBundleDecided(t *testing.T) {
	pol := testPolicy(t)
	events, esc := history(t, pol, Quota{},
		mrIn(paths("internal/auth/a.go"), secretLine()), // T3
		cmd(t, "alice", "/threatgate artifact threat-model https://wiki.example.com/tm"),
		cmd(t, "bob", "/threatgate risk 12 above the ceiling"),
		cmd(t, "erin", "/threatgate dissent not convinced"),
		cmd(t, "dave", "/threatgate reject not with a secret in it"),
	)
	for i := range events {
		events[i].Seq = uint64(i + 1)
	}
	b := BuildBundle(esc, events)
	if b.Decision.Kind != DecidedRejected || b.Decision.By != "dave" || b.Decision.Text != "not with a secret in it" {
		t.Errorf("Decision = %+v", b.Decision)
	}
	if b.Tier.Definition == nil || b.Tier.Definition.ID != "T3" {
		t.Fatalf("Definition = %+v, want T3's", b.Tier.Definition)
	}
	if b.Artifacts[0].Name != "Threat model (STRIDE)" {
		t.Errorf("artifact name = %q", b.Artifacts[0].Name)
	}
	if !reflect.DeepEqual(b.MissingArtifacts, []ArtifactSpec{{ID: "rollback-plan", Name: "Rollback plan"}}) {
		t.Errorf("MissingArtifacts = %+v", b.MissingArtifacts)
	}
	if r := b.Risk; r == nil || r.Score != 12 || r.Ceiling != 9 || !r.Above || r.By != "bob" {
		t.Errorf("Risk = %+v, want 12 by bob above the ceiling of 9", r)
	}
	if len(b.Dissents) != 1 || b.Dissents[0].By != "erin" || len(b.Rejections) != 1 {
		t.Errorf("dissents %+v, rejections %+v", b.Dissents, b.Rejections)
	}
	// Signals and their evidence as stored: the bundle neither masks nor
	// re-evaluates (a redact signal masked them when they were recorded).
	if !reflect.DeepEqual(b.Tier.Signals, esc.Signals) {
		t.Errorf("signals = %+v, want as stored %+v", b.Tier.Signals, esc.Signals)
	}
}

func TestBuildControlSummary(t *testing.T) {
	def := func(controls ...string) *TierSnapshot { return &TierSnapshot{ID: "T", Controls: controls} }
	bundle := func(id string, d *TierSnapshot, gaps ...Gap) *Bundle {
		b := &Bundle{Escalation: id, Tier: BundleTier{ID: "T", Definition: d}, Gaps: gaps, Decision: Decided{Kind: DecidedApproved}}
		if d != nil {
			b.Controls = d.Controls
		}
		return b
	}
	late := Gap{GapLate, "late"}
	cs, unmapped := BuildControlSummary([]*Bundle{
		bundle("ESC-1", def("SOC2 CC8.1", "ISO27001 A.8.32")),
		bundle("ESC-2", def("SOC2 CC8.1", "SOC2 CC8.1"), late),
		bundle("ESC-3", nil),
		bundle("ESC-4", def()),
	})
	var names []string
	for _, c := range cs {
		names = append(names, c.Control)
	}
	if !slices.Equal(names, []string{"ISO27001 A.8.32", "SOC2 CC8.1"}) {
		t.Errorf("controls = %q", names)
	}
	soc := cs[1]
	if len(soc.Escalations) != 2 || soc.Escalations[0].Escalation != "ESC-1" || soc.Escalations[1].Gaps != 1 {
		t.Errorf("SOC2 escalations = %+v", soc.Escalations)
	}
	if !reflect.DeepEqual(soc.Gaps, []ControlGap{{"ESC-2", GapLate, "late"}}) {
		t.Errorf("SOC2 gaps = %+v", soc.Gaps)
	}
	want := []Unmapped{{"ESC-3", "tier definition not recorded"}, {"ESC-4", "tier T maps to no control"}}
	if !reflect.DeepEqual(unmapped, want) {
		t.Errorf("unmapped = %+v, want %+v", unmapped, want)
	}
}

func TestMarkdownEscaping(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a | b", `a \| b`},
		{"<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"},
		{"line one\nline two", "line one<br>line two"},
		{"awaiting_artifacts", "awaiting_artifacts"},
		{"_emphasis_ and *bold*", `\_emphasis\_ and \*bold\*`},
		{"[link](javascript:x)", `\[link\](javascript:x)`},
		{"`code` ~strike~ back\\slash", "\\`code\\` \\~strike\\~ back\\\\slash"},
		{"R&D", "R&amp;D"},
	} {
		if got := md(tt.in); got != tt.want {
			t.Errorf("md(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		link bool
	}{
		{"https://wiki.example.com/a_b?c=d", true},
		{"javascript:alert(1)", false},
		{"https://x.example.com/a)(b", false},
		{"see https://x.example.com", false},
		{"file:///etc/passwd", false},
	} {
		if got := webURL(tt.in); got != tt.link {
			t.Errorf("webURL(%q) = %v, want %v", tt.in, got, tt.link)
		}
	}
}

func TestCSVCells(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"},
		{"+1", "'+1"}, {"-1", "'-1"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\tx", "'\tx"},
		{"plain", "plain"}, {"", ""}, {"2026-11-02T09:00:00Z", "2026-11-02T09:00:00Z"},
		{" =1+1", "' =1+1"}, {"\u00a0=1+1", "'\u00a0=1+1"}, {"\u200b=1+1", "'\u200b=1+1"},
		{"\uff1dHYPERLINK(\"x\")", "'\uff1dHYPERLINK(\"x\")"}, {"\uff20SUM(A1)", "'\uff20SUM(A1)"}, {"\u2212" + "1", "'\u2212" + "1"},
		{"a = b", "a = b"}, {" plain", " plain"}, {"\r=1", "'\r=1"},
	} {
		if got := csvCell(tt.in); got != tt.want {
			t.Errorf("csvCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	events := legacyEvents()
	x := NewExport(t0, t0.Add(48*time.Hour), []*Bundle{BuildBundle(nil, events)})
	files, err := RenderExport(x, "csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name == "checklist.csv" && !strings.Contains(string(f.Data), "'=1+1") {
			t.Errorf("checklist.csv does not guard a formula:\n%s", f.Data)
		}
	}
	if _, err := RenderExport(x, "pdf"); err == nil {
		t.Error("RenderExport(pdf) did not fail")
	}
}

func TestBundleFile(t *testing.T) {
	for _, tt := range []struct{ id, want string }{
		{"ESC-12", "ESC-12.md"},
		{"../../etc/passwd", ".._.._etc_passwd.md"},
		{"..", "escalation-...md"},
		{"index", "escalation-index.md"},
		{"", "escalation-.md"},
	} {
		if got := BundleFile(tt.id, "md"); got != tt.want {
			t.Errorf("BundleFile(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

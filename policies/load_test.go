package policies

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// goodPolicy is a small valid policy; the tables below break it one way
// at a time, so its line numbers matter:
//
//	line 3: the signal, line 6: its when
//	line 8: the tier, line 9: its when, line 10: its approvals
//	line 12: the group, line 14: the person
const goodPolicy = `version: 1
signals:
  - id: auth
    category: access-control
    weight: 40
    when: {paths: ["**/auth/**"]}
tiers:
  - id: T1
    when: {min_score: 10}
    approvals: [{group: appsec}]
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
`

// edit replaces old, which must occur in goodPolicy once, with new.
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(goodPolicy, old) != 1 {
		t.Fatalf("edit: %q is not in goodPolicy exactly once", old)
	}
	return strings.Replace(goodPolicy, old, new, 1)
}

// want is one expected problem: its position, its field and a part of its
// message.
type want struct {
	line, col int
	field     string
	msg       string
}

func checkProblems(t *testing.T, err error, wants []want) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %d problems", len(wants))
	}
	got := Problems(err)
	var list strings.Builder
	for _, p := range got {
		list.WriteString("\n\t" + p.Error())
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d problems, want %d:%s", len(got), len(wants), list.String())
	}
	for i, w := range wants {
		p := got[i]
		if p.Line != w.line || p.Col != w.col || p.Field != w.field || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("problem %d = %d:%d %q %q\nwant %d:%d %q containing %q\nall:%s",
				i, p.Line, p.Col, p.Field, p.Msg, w.line, w.col, w.field, w.msg, list.String())
		}
		if p.File != "p.yaml" {
			t.Errorf("problem %d: File = %q, want p.yaml", i, p.File)
		}
	}
}

func TestLoadGoodPolicy(t *testing.T) {
	p, err := Load("p.yaml", []byte(goodPolicy))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if p.Source != "p.yaml" || p.Version != 1 {
		t.Errorf("Source, Version = %q, %d, want p.yaml, 1", p.Source, p.Version)
	}
	if s := p.Signal("auth"); s == nil || s.Weight != 40 || s.Category != "access-control" {
		t.Errorf("Signal(auth) = %+v", s)
	}
	if p.Signal("nope") != nil || p.Tier("nope") != nil {
		t.Error("unknown ids found")
	}
	if pr := p.Person("gitlab", "alice"); pr == nil || pr.ID != "alice" {
		t.Errorf("Person(gitlab, alice) = %+v, want id alice (from gitlab)", pr)
	}
	if !p.InGroup("alice", "appsec") || p.InGroup("bob", "appsec") || p.InGroup("alice", "nope") {
		t.Error("InGroup wrong")
	}
}

func TestLoadDefaults(t *testing.T) {
	src := `version: 1
signals:
  - id: s
    category: c
    weight: 10
    when: {labels: security}   # one string is a list of one
tiers:
  - id: T2
    when: {min_score: 10}
    approvals: [{group: g}]
  - id: T1
    name: low
    when: {any_signals: s, min_score: 5}
    decision: 4h          # shorter than the default first response
    approvals: [{group: g, count: 2, role: lead}]
    reset_approvals_on_push: false
groups:
  g: {members: [a, b]}
people:
  - {gitlab: a, email: a@example.com}
  - {id: b, gitlab: bee, timezone: Europe/Berlin, hours: "08:00-24:00", email: b@example.com}
artifacts:
  - {id: threat-model, prompt: "Use the wiki template."}
  - {id: pentest}
`
	p, err := Load("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got := p.Signals[0].When.Labels; !slices.Equal(got, []string{"security"}) {
		t.Errorf("Labels = %q, want [security]", got)
	}
	t2, t1 := p.Tier("T2"), p.Tier("T1")
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"T2.Name", t2.Name, "T2"},
		{"T2.FirstResponse", t2.FirstResponse, DefaultFirstResponse},
		{"T2.Decision", t2.Decision, DefaultDecision},
		{"T2.UrgentDecision", t2.UrgentDecision, DefaultDecision / 4},
		{"T2.HandoffAfter", t2.HandoffAfter, DefaultFirstResponse},
		{"T2.ResetApprovalsOnPush", t2.ResetApprovalsOnPush, true},
		{"T2.Approvals", t2.Approvals, []Approval{{Group: "g", Count: 1, Role: "approver"}}},
		{"T2.Rank", t2.Rank(), 0},
		{"T1.Name", t1.Name, "low"},
		{"T1.Rank", t1.Rank(), 1},
		{"T1.When", t1.When, TierCondition{MinScore: 5, AnySignals: []string{"s"}}},
		{"T1.Decision", t1.Decision, 4 * time.Hour},
		{"T1.FirstResponse", t1.FirstResponse, 4 * time.Hour},
		{"T1.UrgentDecision", t1.UrgentDecision, time.Hour},
		{"T1.HandoffAfter", t1.HandoffAfter, 4 * time.Hour},
		{"T1.ResetApprovalsOnPush", t1.ResetApprovalsOnPush, false},
		{"T1.Approvals", t1.Approvals, []Approval{{Group: "g", Count: 2, Role: "lead"}}},
		{"Higher(T2, T1)", Higher(t2, t1), true},
		{"Higher(T1, T2)", Higher(t1, t2), false},
		{"Higher(T1, nil)", Higher(t1, nil), true},
		{"Higher(nil, T1)", Higher(nil, t1), false},
		{"people[0].ID", p.People[0].ID, "a"},
		{"people[0].Timezone", p.People[0].Timezone, "UTC"},
		{"people[0].Location", p.People[0].Location, time.UTC},
		{"people[0].Hours", p.People[0].Hours, "09:00-17:00"},
		{"people[1].ID", p.People[1].ID, "b"},
		{"people[1].Location", p.People[1].Location.String(), "Europe/Berlin"},
		{"Person(gitlab, bee)", p.Person("gitlab", "bee"), p.People[1]},
		{"Person(id, bee)", p.Person("id", "bee"), (*Person)(nil)},
		{"Person(slack, empty)", p.Person("slack", ""), (*Person)(nil)},
		{"Schedule", [4]string{p.Schedule.Sweep, p.Schedule.Digest, p.Schedule.Weekly, p.Schedule.Timezone}, [4]string{"@every 5m", "0 9 * * MON-FRI", "0 9 * * MON", "UTC"}},
		{"Intake", p.Intake, DefaultIntake},
		{"Caps", p.Caps, Caps{}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The built-in artifact kinds come first; the policy can override a
	// prompt and add kinds of its own.
	var ids []string
	for _, a := range p.Artifacts {
		ids = append(ids, a.ID)
	}
	wantIDs := []string{"threat-model", "data-flow-diagram", "impact-matrix", "test-evidence", "rollback-plan", "pentest"}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("Artifacts = %q, want %q", ids, wantIDs)
	}
	if a, _ := p.Artifact("threat-model"); a.Prompt != "Use the wiki template." || a.Name != "Threat model (STRIDE)" {
		t.Errorf("Artifact(threat-model) = %+v, want the built-in name with the policy's prompt", a)
	}
	if a, ok := p.Artifact("pentest"); !ok || a.Name != "pentest" || a.Prompt == "" {
		t.Errorf("Artifact(pentest) = %+v, %v; want a name and prompt made up", a, ok)
	}
	if !p.MayStandIn("a", "g") || p.MayStandIn("z", "g") {
		t.Error("MayStandIn wrong")
	}
}

// TestLoadClockKeys: the keys the clock reads (update_every, away_until,
// urgent_labels, backlog), given and left out.
func TestLoadClockKeys(t *testing.T) {
	src := edit(t, "    approvals:", "    update_every: 1d\n    approvals:") +
		"  - {gitlab: bob, away_until: 2026-12-24, email: bob@example.com}\n" +
		"  - {gitlab: carol, away_until: \"2027-01-02\", email: carol@example.com}\n" +
		"urgent_labels: security::urgent\n" +
		"backlog: {peak_open_threshold: 12, max_deferral: 30d}\n"
	p, err := Load("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"T1.UpdateEvery", p.Tier("T1").UpdateEvery, 24 * time.Hour},
		{"alice.AwayUntil", p.Person("id", "alice").AwayUntil, time.Time{}},
		{"bob.AwayUntil", p.Person("id", "bob").AwayUntil, time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)},
		{"carol.AwayUntil", p.Person("id", "carol").AwayUntil, time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"UrgentLabels", p.UrgentLabels, []string{"security::urgent"}},
		{"Backlog", p.Backlog, Backlog{PeakOpenThreshold: 12, MaxDeferral: 30 * 24 * time.Hour}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Left out, or 0: nothing.
	for _, src := range []string{goodPolicy, edit(t, "    approvals:", "    update_every: 0\n    approvals:")} {
		p, err := Load("p.yaml", []byte(src))
		if err != nil {
			t.Fatalf("Load = %v", err)
		}
		if u := p.Tier("T1").UpdateEvery; u != 0 {
			t.Errorf("UpdateEvery = %v, want 0", u)
		}
		if p.UrgentLabels != nil || p.Backlog != (Backlog{}) {
			t.Errorf("UrgentLabels, Backlog = %q, %+v; want none", p.UrgentLabels, p.Backlog)
		}
	}
}

func TestLoadProblems(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []want
	}{
		{"unknown top-level key", goodPolicy + "owners: [alice]\n", []want{
			{15, 1, "", `unknown key "owners"; want one of version, intake, artifacts, signals, tiers, groups, people, caps, authority, schedule, urgent_labels, backlog`},
		}},
		{"unknown nested key", edit(t, `when: {paths:`, `when: {path:`), []want{
			{6, 12, "signals[0].when", `unknown key "path"; want one of paths, labels, target_branches, projects, title, description, added_lines, min_changed_lines, authors`},
		}},
		{"unknown tier key", edit(t, "    approvals:", "    aprovals: []\n    approvals:"), []want{
			{10, 5, "tiers[0]", `unknown key "aprovals"; want one of id, name, description, when, artifacts, approvals,`},
		}},
		{"merge key", edit(t, "  - id: T1\n", "  - id: T1\n    <<: {name: x}\n"), []want{
			{9, 5, "tiers[0]", "merge keys (<<) are not supported"},
		}},
		{"duplicate key", edit(t, "    weight: 40\n", "    weight: 40\n    weight: 50\n"), []want{
			{6, 5, "signals[0].weight", "duplicate key"},
		}},
		{"bad regex", edit(t, `when: {paths: ["**/auth/**"]}`, `when: {added_lines: ["ok", "(unclosed"]}`), []want{
			{6, 32, "signals[0].when.added_lines[1]", "bad regular expression: missing closing ): `(unclosed`"},
		}},
		{"bad glob", edit(t, `"**/auth/**"`, `"src/{auth"`), []want{
			{6, 20, "signals[0].when.paths[0]", `bad glob "src/{auth"; want a pattern such as`},
		}},
		{"bad target branch glob", edit(t, `paths: ["**/auth/**"]`, `target_branches: ["release/[1-"]`), []want{
			{6, 30, "signals[0].when.target_branches[0]", `bad glob "release/[1-"`},
		}},
		{"bad duration", edit(t, "    approvals:", "    decision: two days\n    approvals:"), []want{
			{10, 15, "tiers[0].decision", `want a positive duration such as "48h", "90m" or "2d", got "two days"`},
		}},
		{"negative duration", edit(t, "    approvals:", "    first_response: -4h\n    approvals:"), []want{
			{10, 21, "tiers[0].first_response", `got "-4h"`},
		}},
		{"first response longer than decision", edit(t, "    approvals:", "    first_response: 3d\n    decision: 2d\n    approvals:"), []want{
			{10, 21, "tiers[0].first_response", "72h0m0s is longer than decision 48h0m0s"},
		}},
		{"urgent decision longer than decision", edit(t, "    approvals:", "    urgent_decision: 4d\n    approvals:"), []want{
			{10, 22, "tiers[0].urgent_decision", "96h0m0s is longer than decision 72h0m0s; urgent should be faster"},
		}},
		{"undefined group", edit(t, "{group: appsec}", "{group: secops}"), []want{
			{10, 25, "tiers[0].approvals[0].group", `undefined group "secops" (not in groups); want one of appsec`},
		}},
		{"undefined review group", edit(t, "    approvals:", "    review: [appsec, sre]\n    approvals:"), []want{
			{10, 22, "tiers[0].review[1]", `undefined group "sre"`},
		}},
		{"undefined signal", edit(t, "{min_score: 10}", "{any_signals: [auth, authz]}"), []want{
			{9, 32, "tiers[0].when.any_signals[1]", `undefined signal "authz" (not in signals); want one of auth`},
		}},
		{"undefined person", edit(t, "[alice]}", "[alice, zed]}"), []want{
			{12, 29, "groups.appsec.members[1]", `undefined person "zed" (not in people); want one of alice`},
		}},
		{"undefined artifact", edit(t, "    approvals:", "    artifacts: [threat-model, pentest]\n    approvals:"), []want{
			{10, 31, "tiers[0].artifacts[1]", `undefined artifact "pentest" (not in artifacts); want one of data-flow-diagram, impact-matrix, rollback-plan, test-evidence, threat-model`},
		}},
		{"undefined backup group", edit(t, "{members: [alice]}", "{members: [alice], backups: [leads]}"), []want{
			{12, 40, "groups.appsec.backups[0]", `undefined group "leads"`},
		}},
		{"group is its own backup", edit(t, "{members: [alice]}", "{members: [alice], backups: [appsec]}"), []want{
			{12, 40, "groups.appsec.backups[0]", "a group cannot be its own backup"},
		}},
		{"duplicate signal id", edit(t, "tiers:\n", "  - {id: auth, category: c, weight: 1, when: {labels: [x]}}\ntiers:\n"), []want{
			{7, 5, "signals[1].id", `duplicate signal id "auth"`},
		}},
		{"duplicate tier id", edit(t, "groups:\n", "  - id: T1\n    when: {min_score: 5}\n    approvals: [{group: appsec}]\ngroups:\n"), []want{
			{11, 9, "tiers[1].id", `duplicate tier id "T1"`},
		}},
		{"duplicate person slack id", edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, slack: U01, email: alice@example.com}\n  - {gitlab: bob, slack: U01, email: bob@example.com}\n"), []want{
			{15, 26, "people[1].slack", `slack "U01" is already given to alice`},
		}},
		{"slack channel of the wrong shape", edit(t, "  appsec: {members: [alice]}\n", "  appsec: {members: [alice], slack_channel: '#security'}\n"), []want{
			{12, 45, "groups.appsec.slack_channel", `want a Slack channel id such as C0123ABCD`},
		}},
		{"slack id of the wrong shape", edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, slack: '@alice', email: alice@example.com}\n"), []want{
			{14, 28, "people[0].slack", `want the person's Slack member id, such as U0123ABCD`},
		}},
		{"duplicate person gitlab", edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, email: alice@example.com}\n  - {gitlab: alice, name: Alice Two, email: alice@example.com}\n"), []want{
			{15, 14, "people[1].id", `id "alice" is already given to alice`},
		}},
		{"person without id", edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, email: alice@example.com}\n  - {name: Nobody}\n"), []want{
			{15, 5, "people[1]", "a person needs an id or a gitlab username"},
		}},
		{"min_score above every signal", edit(t, "{min_score: 10}", "{min_score: 500}"), []want{
			{9, 23, "tiers[0].when.min_score", "tier T1 can never match: min_score 500 is above 40, the score of every signal firing at once"},
		}},
		{"tier shadowed by a lower min_score above it", edit(t, "groups:\n", "  - id: T0\n    when: {min_score: 20}\n    approvals: [{group: appsec}]\ngroups:\n"), []want{
			{12, 11, "tiers[1].when", "tier T0 can never match: tier T1 above it matches every MR that T0 would (tiers are tried in order, highest first)"},
		}},
		{"tier shadowed by wider any_signals above it", `version: 1
signals:
  - {id: auth, category: c, weight: 40, when: {paths: ["**/auth/**"]}}
  - {id: big, category: c, weight: 5, when: {min_changed_lines: 500}}
tiers:
  - {id: T2, when: {any_signals: [auth, big]}, approvals: [{group: appsec}]}
  - {id: T1, when: {any_signals: [big], min_score: 30}, approvals: [{group: appsec}]}
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
`, []want{
			{7, 20, "tiers[1].when", "tier T1 can never match: tier T2 above it matches every MR that T1 would"},
		}},
		{"approvals count larger than the group", edit(t, "{group: appsec}", "{group: appsec, count: 3}"), []want{
			{10, 40, "tiers[0].approvals[0].count", "tier T1 can never be approved: it needs 3 approvals from appsec, which has 1 people with its backups"},
		}},
		{"approvals empty", edit(t, "[{group: appsec}]", "[]"), []want{
			{10, 16, "tiers[0].approvals", "empty; a tier needs at least one approval row"},
		}},
		{"approvals missing", edit(t, "    approvals: [{group: appsec}]\n", ""), []want{
			{8, 5, "tiers[0].approvals", "missing; a tier needs at least one approval row"},
		}},
		{"approval without group", edit(t, "[{group: appsec}]", "[{count: 1}]"), []want{
			{10, 17, "tiers[0].approvals[0].group", "missing; name the group that approves"},
		}},
		{"empty signal when", edit(t, `when: {paths: ["**/auth/**"]}`, "when: {}"), []want{
			{6, 11, "signals[0].when", "empty; a signal needs at least one condition (paths, labels,"},
		}},
		{"missing signal when", edit(t, "    when: {paths: [\"**/auth/**\"]}\n", ""), []want{
			{3, 5, "signals[0].when", "missing; a signal needs at least one condition"},
		}},
		{"empty tier when", edit(t, "{min_score: 10}", "{}"), []want{
			{9, 11, "tiers[0].when", "empty; want min_score and/or any_signals"},
		}},
		{"tier when a number", edit(t, "{min_score: 10}", "50"), []want{
			{9, 11, "tiers[0].when", `want a mapping with keys min_score, any_signals, got "50"`},
		}},
		{"empty condition list", edit(t, `["**/auth/**"]`, "[]"), []want{
			{6, 19, "signals[0].when.paths", "empty list; remove the key or give at least one pattern"},
		}},
		{"weight not a number", edit(t, "weight: 40", "weight: heavy"), []want{
			{5, 13, "signals[0].weight", `want a whole number from 1 to 1000, got "heavy"`},
		}},
		{"weight out of range", edit(t, "weight: 40", "weight: 0"), []want{
			{5, 13, "signals[0].weight", `want a whole number from 1 to 1000, got "0"`},
		}},
		{"paths a mapping", edit(t, `["**/auth/**"]`, "{auth: yes}"), []want{
			{6, 19, "signals[0].when.paths", "want a list of strings, got a mapping"},
		}},
		{"list item a list", edit(t, `["**/auth/**"]`, `["**/auth/**", [x]]`), []want{
			{6, 34, "signals[0].when.paths[1]", "want a string, got a list"},
		}},
		{"signals a mapping", edit(t, "signals:\n  - id: auth\n", "signals:\n  x:\n    id: auth\n"), []want{
			{3, 3, "signals", "want a list, got a mapping"},
		}},
		{"signal a string", edit(t, "tiers:\n", "  - auth\ntiers:\n"), []want{
			{7, 5, "signals[1]", `want a mapping with keys id, category, weight, description, when, redact, got "auth"`},
		}},
		{"flag not a bool", edit(t, "    approvals:", "    page_on_lapse: maybe\n    approvals:"), []want{
			{10, 20, "tiers[0].page_on_lapse", `want true or false, got "maybe"`},
		}},
		{"version 2", edit(t, "version: 1", "version: 2"), []want{
			{1, 10, "version", `want 1, got "2"`},
		}},
		{"bad id", edit(t, "id: auth", "id: auth code"), []want{
			{3, 9, "signals[0].id", `want an id of letters, digits, '-', '_' or '.' (at most 64), got "auth code"`},
		}},
		{"bad timezone", edit(t, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, timezone: Mars/Olympus, email: alice@example.com}"), []want{
			{14, 31, "people[0].timezone", `unknown time zone "Mars/Olympus"; want an IANA name such as Europe/Berlin`},
		}},
		{"bad schedule timezone", goodPolicy + "schedule: {timezone: Nowhere}\n", []want{
			{15, 22, "schedule.timezone", `unknown time zone "Nowhere"`},
		}},
		{"hours backwards", edit(t, "{gitlab: alice, email: alice@example.com}", `{gitlab: alice, hours: "17:00-09:00", email: alice@example.com}`), []want{
			{14, 28, "people[0].hours", `want working hours such as "09:00-17:00" (start before end), got "17:00-09:00"`},
		}},
		{"hours past midnight", edit(t, "{gitlab: alice, email: alice@example.com}", `{gitlab: alice, hours: "09:00-24:30", email: alice@example.com}`), []want{
			{14, 28, "people[0].hours", `got "09:00-24:30"`},
		}},
		{"bad cron spec", goodPolicy + "schedule:\n  digest: \"0 25 * * *\"\n", []want{
			{16, 11, "schedule.digest", `bad schedule "0 25 * * *"`},
		}},
		{"cron spec that panics robfig/cron", goodPolicy + "schedule: {sweep: \"TZ=UTC\"}\n", []want{
			{15, 19, "schedule.sweep", `bad schedule "TZ=UTC"`},
		}},
		{"caps without override group", goodPolicy + "caps: {manual_escalations_per_quarter: 5}\n", []want{
			{15, 7, "caps.override_group", "missing; name the group that may lift the cap"},
		}},
		{"caps override group undefined", goodPolicy + "caps: {manual_escalations_per_quarter: 5, override_group: leads}\n", []want{
			{15, 59, "caps.override_group", `undefined group "leads"`},
		}},
		{"authority group undefined", goodPolicy + "authority: {retier: [appsec], arbiter: [leads]}\n", []want{
			{15, 41, "authority.arbiter[0]", `undefined group "leads"`},
		}},
		{"risk validators group undefined", goodPolicy + "authority: {risk_validators: [leads]}\n", []want{
			{15, 31, "authority.risk_validators[0]", `undefined group "leads"`},
		}},
		{"risk validators not a list of names", goodPolicy + "authority: {risk_validators: {appsec: yes}}\n", []want{
			{15, 30, "authority.risk_validators", "want"},
		}},
		{"risk validator without an e-mail", edit(t, "  appsec: {members: [alice]}\n", "  appsec: {members: [alice]}\n  validators: {members: [vic]}\n") +
			"  - {gitlab: vic}\nauthority: {risk_validators: [validators]}\n", []want{
			{16, 5, "people[1].emails", "which validates residual risk, but has no e-mail address"},
		}},
		{"group without members", edit(t, "{members: [alice]}", "{backups: []}"), []want{
			{12, 3, "groups.appsec.members", "missing or empty; a group needs at least one member"},
		}},
		{"missing version, signals, tiers", "groups:\n  appsec: {members: [alice]}\npeople:\n  - {gitlab: alice, email: alice@example.com}\n", []want{
			{1, 1, "version", "missing; want version: 1"},
			{1, 1, "signals", "missing; a policy needs at least one signal"},
			{1, 1, "tiers", "missing; a policy needs at least one tier"},
		}},
		{"empty tiers", edit(t, "tiers:\n  - id: T1\n    when: {min_score: 10}\n    approvals: [{group: appsec}]\n", "tiers: []\n"), []want{
			{7, 8, "tiers", "empty; a policy needs at least one tier"},
		}},
		{"not a mapping", "- version: 1\n", []want{
			{1, 1, "", "want a mapping with keys version, intake, artifacts, signals, tiers, groups, people, caps, authority, schedule, urgent_labels, backlog, got a list"},
		}},
		{"YAML syntax error", "version: 1\nsignals: [\n  - id: x\n", []want{
			{2, 1, "", "not valid YAML: did not find expected node content"},
		}},
		{"empty file", "", []want{
			{1, 1, "", "the policy is empty"},
		}},
		{"comments only", "# nothing yet\n", []want{
			{1, 1, "", "the policy is empty"},
		}},
		{"document of nothing", "---\n", []want{
			{2, 1, "", "want a mapping with keys version"},
		}},
		{"alias that contains itself", edit(t, `["**/auth/**"]`, `&p ["**/auth/**", *p]`), []want{
			{6, 37, "", "aliases (*name) expand the policy by more than 100000 nodes or refer to themselves"},
		}},
		{"intake without id", goodPolicy + "intake:\n  - {prompt: \"What?\"}\n", []want{
			{16, 5, "intake[0].id", "missing"},
		}},
		{"duplicate intake id", goodPolicy + "intake:\n  - {id: a}\n  - {id: a}\n", []want{
			{17, 5, "intake[1].id", `duplicate intake field "a"`},
		}},
		{"duplicate artifact kind", goodPolicy + "artifacts:\n  - {id: a}\n  - {id: a}\n", []want{
			{17, 5, "artifacts[1].id", `duplicate artifact kind "a"`},
		}},
		{"bad checklist item", edit(t, "    approvals:", "    checklist: [data-sensitivity, \"is it safe?\"]\n    approvals:"), []want{
			{10, 35, "tiers[0].checklist[1]", `want a checklist item id such as data-sensitivity, got "is it safe?"`},
		}},
		{"residual risk out of range", edit(t, "    approvals:", "    max_residual_risk: 30\n    approvals:"), []want{
			{10, 24, "tiers[0].max_residual_risk", `want a whole number from 1 to 25, got "30"`},
		}},
		{"update_every under a minute", edit(t, "    approvals:", "    update_every: 30s\n    approvals:"), []want{
			{10, 19, "tiers[0].update_every", `want at least 1m (or 0 for none), got "30s"`},
		}},
		{"update_every not a duration", edit(t, "    approvals:", "    update_every: daily\n    approvals:"), []want{
			{10, 19, "tiers[0].update_every", `want a duration such as "24h", "90m" or "1d", or 0 for none, got "daily"`},
		}},
		{"update_every negative", edit(t, "    approvals:", "    update_every: -1h\n    approvals:"), []want{
			{10, 19, "tiers[0].update_every", `got "-1h"`},
		}},
		{"away_until not a date", edit(t, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, away_until: 24.12.2026, email: alice@example.com}"), []want{
			{14, 33, "people[0].away_until", `want a date from 2000 on as YYYY-MM-DD, such as "2026-12-24", got "24.12.2026"`},
		}},
		{"away_until not a real day", edit(t, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, away_until: 2026-02-30, email: alice@example.com}"), []want{
			{14, 33, "people[0].away_until", `got "2026-02-30"`},
		}},
		{"away_until a list", edit(t, "{gitlab: alice, email: alice@example.com}", "{gitlab: alice, away_until: [2026-12-24], email: alice@example.com}"), []want{
			{14, 33, "people[0].away_until", `want a date such as "2026-12-24", got a list`},
		}},
		{"urgent_labels empty", goodPolicy + "urgent_labels: []\n", []want{
			{15, 16, "urgent_labels", "empty list; remove the key or name at least one value"},
		}},
		{"urgent_labels with an empty name", goodPolicy + "urgent_labels: [security::urgent, \"\"]\n", []want{
			{15, 35, "urgent_labels[1]", "empty; want a name"},
		}},
		{"backlog unknown key", goodPolicy + "backlog: {peak: 3}\n", []want{
			{15, 11, "backlog", `unknown key "peak"; want one of peak_open_threshold, max_deferral`},
		}},
		{"backlog threshold negative", goodPolicy + "backlog: {peak_open_threshold: -1}\n", []want{
			{15, 32, "backlog.peak_open_threshold", `want a whole number from 0 to 1000000, got "-1"`},
		}},
		{"backlog max_deferral not a duration", goodPolicy + "backlog: {max_deferral: a month}\n", []want{
			{15, 25, "backlog.max_deferral", `want a positive duration such as "48h", "90m" or "2d", got "a month"`},
		}},
		{"backlog max_deferral past the limit", goodPolicy + "backlog: {max_deferral: 13w}\n", []want{
			{15, 25, "backlog.max_deferral", "13w is longer than the 90d threatgate ever defers; want at most 90d"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load("p.yaml", []byte(tt.src))
			if p != nil {
				t.Errorf("Load returned a policy with problems")
			}
			checkProblems(t, err, tt.want)
		})
	}
}

// TestLoadTiersThatCanMatch: orders in which a later tier still catches
// MRs the earlier ones do not are not reported.
// TestLoadRiskValidators: authority.risk_validators names the groups that
// validate a residual-risk score, beside retier and arbiter.
func TestLoadRiskValidators(t *testing.T) {
	p, err := Load("p.yaml", []byte(goodPolicy+"authority: {retier: [appsec], risk_validators: appsec}\n"))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got := p.Authority.RiskValidators; !slices.Equal(got, []string{"appsec"}) {
		t.Errorf("Authority.RiskValidators = %q, want [appsec]", got)
	}
	if got := p.Authority.Arbiter; got != nil {
		t.Errorf("Authority.Arbiter = %q, want none", got)
	}
}

func TestLoadTiersThatCanMatch(t *testing.T) {
	for _, tiers := range []string{
		// a higher min_score first
		"{id: T2, when: {min_score: 45}}\n  - {id: T1, when: {min_score: 20}}",
		// narrower any_signals first
		"{id: T2, when: {any_signals: [auth]}}\n  - {id: T1, when: {any_signals: [auth, big]}}",
		// any_signals first, then a tier for every signal
		"{id: T2, when: {min_score: 40, any_signals: [auth]}}\n  - {id: T1, when: {min_score: 40}}",
		// a min_score first, then any_signals with a lower min_score
		"{id: T2, when: {min_score: 40}}\n  - {id: T1, when: {any_signals: [big]}}",
	} {
		src := `version: 1
signals:
  - {id: auth, category: c, weight: 40, when: {paths: ["**/auth/**"]}}
  - {id: big, category: c, weight: 5, when: {min_changed_lines: 500}}
tiers:
  - ` + strings.ReplaceAll(tiers, "}}", "}, approvals: [{group: appsec}]}") + `
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
`
		if _, err := Load("p.yaml", []byte(src)); err != nil {
			t.Errorf("tiers\n  - %s\nLoad = %v", tiers, err)
		}
	}
}

// TestLoadReportsEveryProblem breaks a policy in five places and expects
// five problems, sorted by line, in one error.
func TestLoadReportsEveryProblem(t *testing.T) {
	src := `version: 1
signals:
  - id: auth
    category: access-control
    weight: lots
    when: {paths: ["src/{auth"]}
tiers:
  - id: T1
    when: {min_score: 10}
    decision: soon
    approvals: [{group: secops}]
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, timezone: Moon/Base, email: alice@example.com}
`
	_, err := Load("p.yaml", []byte(src))
	checkProblems(t, err, []want{
		{5, 13, "signals[0].weight", "want a whole number"},
		{6, 20, "signals[0].when.paths[0]", "bad glob"},
		{10, 15, "tiers[0].decision", "want a positive duration"},
		{11, 25, "tiers[0].approvals[0].group", `undefined group "secops"`},
		{15, 31, "people[0].timezone", "unknown time zone"},
	})
	// errors.Join: one line per problem, each "file:line:col: field: message".
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 5 {
		t.Fatalf("err.Error() has %d lines, want 5:\n%s", len(lines), err)
	}
	if want := `p.yaml:5:13: signals[0].weight: want a whole number from 1 to 1000, got "lots"`; lines[0] != want {
		t.Errorf("first line = %q, want %q", lines[0], want)
	}
	var p *Problem
	if !errors.As(err, &p) {
		t.Error("errors.As(err, *Problem) = false")
	}
}

func TestProblemError(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "p.yaml", Line: 14, Col: 15, Field: "tiers[0].decision", Msg: "want a duration"}, "p.yaml:14:15: tiers[0].decision: want a duration"},
		{Problem{File: "p.yaml", Line: 3, Col: 1, Msg: "not valid YAML"}, "p.yaml:3:1: not valid YAML"},
		{Problem{File: "p.yaml", Msg: "cannot read the policy"}, "p.yaml: cannot read the policy"},
		{Problem{Field: "--tier", Msg: "unknown tier"}, "--tier: unknown tier"},
		{Problem{Msg: "plain"}, "plain"},
	} {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(good, []byte(goodPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := LoadFile(good); err != nil || p.Source != good {
		t.Errorf("LoadFile(good) = %v, %v; want a policy from %s", p, err, good)
	}

	missing := filepath.Join(dir, "missing.yaml")
	_, err := LoadFile(missing)
	if ps := Problems(err); len(ps) != 1 || ps[0].File != missing || !strings.Contains(ps[0].Msg, "cannot read the policy: no such file") {
		t.Errorf("LoadFile(missing) = %v, want a Problem naming the file", err)
	}
	if strings.Count(err.Error(), missing) != 1 {
		t.Errorf("LoadFile(missing) = %q, want the path named once", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxPolicySize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(big)
	if ps := Problems(err); len(ps) != 1 || !strings.Contains(ps[0].Msg, "larger than 4 MiB") {
		t.Errorf("LoadFile(big) = %v, want a Problem about the size", err)
	}
	if _, err := Load("big.yaml", make([]byte, MaxPolicySize+1)); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("Load(big) = %v, want a Problem about the size", err)
	}
}

// TestLoadAliases: anchors and aliases are fine in moderation (the default
// policy uses them) but a file of aliases of aliases is refused before the
// loader walks it.
func TestLoadAliases(t *testing.T) {
	src := `version: 1
signals:
  - {id: auth, category: c, weight: 40, when: {paths: &auth ["**/auth/**", "**/session/**"]}}
  - {id: auth-secret, category: c, weight: 60, when: {paths: *auth, added_lines: [secret]}}
tiers:
  - {id: T1, when: {min_score: 10}, approvals: [{group: appsec}]}
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
`
	p, err := Load("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got := p.Signal("auth-secret").When.Paths; !slices.Equal(got, []string{"**/auth/**", "**/session/**"}) {
		t.Errorf("aliased paths = %q", got)
	}

	// Ten levels of ten aliases each: 10^10 nodes once expanded.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 10; i++ {
		prev := "*a" + strconv.Itoa(i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Repeat(prev+", ", 9)+prev)
	}
	_, err = Load("p.yaml", []byte(b.String()))
	ps := Problems(err)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "aliases (*name) expand the policy") {
		t.Fatalf("Load(alias bomb) = %v, want one problem about aliases", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"48h", 48 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"2d", 48 * time.Hour, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"0d", 0, true},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"3651d", 0, false},
		{"d", 0, false},
		{"two days", 0, false},
		{"", 0, false},
	} {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestLoadScheduleReport: schedule.report is another name for
// schedule.weekly; both at once is a problem.
func TestLoadScheduleReport(t *testing.T) {
	p, err := Load("p.yaml", []byte(goodPolicy+"schedule: {sweep: \"@every 1s\", report: \"0 8 * * MON\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Schedule.Weekly != "0 8 * * MON" || p.Schedule.Sweep != "@every 1s" {
		t.Errorf("schedule %+v", p.Schedule)
	}
	_, err = Load("p.yaml", []byte(goodPolicy+"schedule: {weekly: \"0 9 * * MON\", report: \"0 8 * * MON\"}\n"))
	if err == nil || !strings.Contains(err.Error(), "schedule.report: set the weekly report's schedule once: schedule.weekly is already set") {
		t.Errorf("weekly and report both set: %v", err)
	}
}

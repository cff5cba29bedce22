package bot

// Residual risk scored as likelihood x impact with compensating controls,
// validated by a second person named in authority.risk_validators (issue
// 12): the grammar, who may validate, what the gate waits for, and what
// the evidence bundle shows.

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/policies"
)

func TestParseRisk(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Command
	}{
		{"/threatgate risk 12 likely but contained", Command{Verb: VerbRisk, Risk: 12, Text: "likely but contained"}},
		{`/threatgate risk ESC-3 likelihood=2 impact=4 controls="WAF rule, rate limit" internal only`,
			Command{Verb: VerbRisk, Escalation: "ESC-3", Risk: 8, Likelihood: 2, Impact: 4, Controls: "WAF rule, rate limit", Text: "internal only"}},
		{"/threatgate risk Impact=5 LIKELIHOOD=1", Command{Verb: VerbRisk, Risk: 5, Likelihood: 1, Impact: 5}},
		{"/threatgate risk controls=mTLS likelihood=3 impact=3", Command{Verb: VerbRisk, Risk: 9, Likelihood: 3, Impact: 3, Controls: "mTLS"}},
		{`/threatgate risk likelihood=2 impact=2 "controls=later" is text`, Command{Verb: VerbRisk, Risk: 4, Likelihood: 2, Impact: 2, Text: `"controls=later" is text`}},
		{"/threatgate risk 4 likelihood=2 is text after a score", Command{Verb: VerbRisk, Risk: 4, Text: "likelihood=2 is text after a score"}},
		{"/threatgate risk ESC-3 --validate", Command{Verb: VerbRisk, Escalation: "ESC-3", Validate: true}},
		{"/threatgate risk —validate esc-3 checked the WAF rule", Command{Verb: VerbRisk, Escalation: "ESC-3", Validate: true, Text: "checked the WAF rule"}},
	} {
		got, err := ParseCommand(tt.in)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCommand(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
		}
		again, err := ParseCommand(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("String %q reads back as %#v, %v; want %#v", got.String(), again, err, got)
		}
	}
}

func TestParseRiskProblems(t *testing.T) {
	for _, tt := range []struct{ in, field, msg string }{
		{"/threatgate risk likelihood=6 impact=2", "/threatgate risk likelihood", `want a whole number from 1 to 5 such as likelihood=3, got "likelihood=6"`},
		{"/threatgate risk likelihood=2 impact=0", "/threatgate risk impact", `got "impact=0"`},
		{"/threatgate risk likelihood=x impact=2", "/threatgate risk likelihood", `got "likelihood=x"`},
		{"/threatgate risk likelihood=2", "/threatgate risk", "missing impact=1..5"},
		{`/threatgate risk controls="WAF"`, "/threatgate risk", "missing likelihood=1..5 and impact=1..5"},
		{"/threatgate risk likelihood=2 impact=2 likelihood=3", "/threatgate risk likelihood", "given twice"},
		{`/threatgate risk likelihood=2 impact=2 controls=""`, "/threatgate risk controls", "want the compensating controls"},
		{`/threatgate risk likelihood=2 impact=2 controls="open`, "/threatgate risk", "unterminated"},
		{"/threatgate risk --validate 12", "/threatgate risk --validate", "takes none"},
		{"/threatgate risk --validate likelihood=2 impact=2", "/threatgate risk --validate", "takes none"},
		{"/threatgate risk --validate --validate", "/threatgate risk --validate", "given twice"},
		{"/threatgate risk --validate=yes", "/threatgate risk --validate", "takes no value"},
		{"/threatgate risk likelihood=2 impact=2 fine --validate", "/threatgate risk", "put flags before the rationale"},
		{"/threatgate risk --check a=b 4", "/threatgate risk", "takes --validate"},
		{"/threatgate risk", "/threatgate risk", "want a residual risk from 1 to 25, or likelihood=1..5"},
	} {
		c, err := ParseCommand(tt.in)
		p, ok := IsProblem(err)
		if !ok {
			t.Errorf("ParseCommand(%q) = %#v, %v; want a Problem", tt.in, c, err)
			continue
		}
		if p.Field != tt.field || !strings.Contains(p.Msg, tt.msg) {
			t.Errorf("ParseCommand(%q) = Problem %q %q, want field %q containing %q", tt.in, p.Field, p.Msg, tt.field, tt.msg)
		}
	}
}

// validatorsPolicy is the test policy with authority.risk_validators:
// carol (appsec) and vic validate.
func validatorsPolicy(t testing.TB) *policies.Policy {
	t.Helper()
	src := strings.Replace(testPolicyYAML, "  champions: {members: [erin, ann]}\n", "  champions: {members: [erin, ann]}\n  riskval: {members: [carol, vic]}\n", 1)
	src = strings.Replace(src, "  - {gitlab: frank, email: Frank@example.com}\n", "  - {gitlab: frank, email: Frank@example.com}\n  - {gitlab: vic, email: vic@example.com}\n", 1)
	src = strings.Replace(src, "authority: {retier: [leads], arbiter: [leads]}", "authority: {retier: [leads], arbiter: [leads], risk_validators: [riskval]}", 1)
	p, err := policies.Load("validators.yaml", []byte(src))
	if err != nil {
		t.Fatalf("validators policy: %v", err)
	}
	if !slices.Equal(p.Authority.RiskValidators, []string{"riskval"}) {
		t.Fatalf("RiskValidators = %q", p.Authority.RiskValidators)
	}
	return p
}

func TestDecideRiskValidation(t *testing.T) {
	plain, withV := testPolicy(t), validatorsPolicy(t)
	openT3 := mrIn(action(MROpen), paths("src/auth/login.go"), secretLine())
	arts := []Input{openT3, cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y")}
	given := func(ins ...Input) []Input { return append(slices.Clone(arts), ins...) }
	score := cmd(t, "alice", `/threatgate risk likelihood=2 impact=3 controls="WAF rule" internal only`)
	validate := func(who string) Input { return cmd(t, who, "/threatgate risk --validate checked") }
	approvals := []Input{cmd(t, "bob", "/approve --check data-sensitivity=none"), cmd(t, "frank", "/approve --check data-sensitivity=none")}
	lead := cmd(t, "dave", "/approve --check data-sensitivity=none")

	for _, tt := range []struct {
		name  string
		pol   *policies.Policy
		given []Input
		when  Input
		then  []string
		field string
		err   string
	}{
		{name: "the new form records likelihood, impact and controls", pol: withV, given: arts, when: score,
			then: []string{"risk_assessed alice"}},
		{name: "a validator who is not the scorer validates", pol: withV, given: given(score), when: validate("vic"),
			then: []string{"risk_validated vic"}},
		{name: "an approver who validates is fine when someone else scored", pol: withV, given: given(score), when: validate("carol"),
			then: []string{"risk_validated carol"}},
		{name: "the scorer cannot validate their own score", pol: withV, given: given(cmd(t, "carol", "/threatgate risk likelihood=1 impact=2 low")), when: validate("carol"),
			field: "/threatgate risk --validate", err: "you recorded the score 2 yourself"},
		{name: "the MR's author cannot validate",
			pol:   withV,
			given: []Input{mrIn(action(MROpen), paths("src/auth/login.go"), secretLine(), committers("vic@example.com")), cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"), score},
			when:  validate("vic"), field: "/threatgate risk --validate", err: "you wrote this merge request or commits in it"},
		{name: "someone outside risk_validators cannot validate", pol: withV, given: given(score), when: validate("bob"),
			field: "/threatgate risk --validate", err: "only members of riskval (authority.risk_validators)"},
		{name: "nothing to validate before a score", pol: withV, given: arts, when: validate("vic"),
			field: "/threatgate risk --validate", err: "no residual risk counts for ESC-1"},
		{name: "a validated score is not validated twice", pol: withV, given: given(score, validate("vic")), when: validate("carol"),
			field: "/threatgate risk --validate", err: "already validated by vic"},
		{name: "without risk_validators nobody validates", pol: plain, given: given(score), when: validate("carol"),
			field: "/threatgate risk --validate", err: "names no authority.risk_validators"},
		{name: "with validators, the matrix filled does not approve an unvalidated score", pol: withV, given: given(append([]Input{score}, approvals...)...), when: lead,
			then: []string{"approval_added dave leads"}},
		{name: "and the validation then approves it", pol: withV, given: given(append([]Input{score}, append(slices.Clone(approvals), lead)...)...), when: validate("vic"),
			then: []string{"risk_validated vic", "state_changed vic in_review->approved"}},
		{name: "without validators the same history approves at once", pol: plain, given: given(append([]Input{score}, approvals...)...), when: lead,
			then: []string{"approval_added dave leads", "state_changed dave in_review->approved"}},
		{name: "a new score clears the validation: approved goes back to review", pol: withV,
			given: given(append([]Input{score}, append(slices.Clone(approvals), lead, validate("vic"))...)...),
			when:  cmd(t, "bob", "/threatgate risk likelihood=1 impact=3 controls=\"WAF rule, mTLS\" lower after mTLS"),
			then:  []string{"risk_assessed bob", "state_changed bob approved->in_review"}},
		{name: "and a second validation of the new score approves again", pol: withV,
			given: given(append([]Input{score}, append(slices.Clone(approvals), lead, validate("vic"), cmd(t, "bob", "/threatgate risk likelihood=1 impact=3 lower"))...)...),
			when:  validate("vic"),
			then:  []string{"risk_validated vic", "state_changed vic in_review->approved"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, esc := history(t, tt.pol, Quota{}, tt.given...)
			evs, _, err := decide(Given{Esc: esc}, tt.pol, tt.when, t0.Add(time.Hour))
			if tt.err != "" {
				var p *Problem
				if !errors.As(err, &p) || p.Field != tt.field || !strings.Contains(p.Msg, tt.err) {
					t.Fatalf("err = %v, want Problem %q containing %q", err, tt.field, tt.err)
				}
				if len(evs) != 0 {
					t.Errorf("events %v with the Problem, want none", kindsOf(evs))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want accepted", err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, brief(ev))
			}
			if !slices.Equal(got, tt.then) {
				t.Errorf("events:\n got %q\nwant %q", got, tt.then)
			}
		})
	}
}

// TestRiskProjection: a score in the new form lands on the risk note with
// its factors and controls; the validation names its validator; a new
// score starts unvalidated.
func TestRiskProjection(t *testing.T) {
	pol := validatorsPolicy(t)
	_, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
		cmd(t, "alice", `/threatgate risk likelihood=2 impact=3 controls="WAF rule" internal only`),
		cmd(t, "vic", "/threatgate risk --validate checked the rule"),
	)
	r := esc.Risk
	if r == nil || r.Score != 6 || r.Likelihood != 2 || r.Impact != 3 || r.Controls != "WAF rule" || r.By != "alice" {
		t.Fatalf("Risk = %+v, want 6 = 2 x 3 with controls WAF rule by alice", r)
	}
	if r.ValidatedBy != "vic" || r.ValidatedAt.IsZero() || r.ValidatedNote != "checked the rule" {
		t.Errorf("validation = %q at %v note %q, want vic with a time and the note", r.ValidatedBy, r.ValidatedAt, r.ValidatedNote)
	}
	if !RiskValidated(esc, pol) {
		t.Error("RiskValidated = false, want true")
	}
	next := apply(esc, Event{Kind: EventRisk, Actor: "bob", SHA: esc.HeadSHA, At: t0.Add(time.Hour), Data: EventData{Risk: 4, Likelihood: 2, Impact: 2}})
	if next.Risk.ValidatedBy != "" || RiskValidated(next, pol) {
		t.Errorf("after a new score: ValidatedBy = %q, want none", next.Risk.ValidatedBy)
	}
	// A validation of another score than the current one changes nothing.
	if again := apply(next, Event{Kind: EventRiskValidated, Actor: "vic", At: t0.Add(2 * time.Hour), Data: EventData{Risk: 6}}); again.Risk.ValidatedBy != "" {
		t.Errorf("a validation of score 6 validated score 4: %+v", again.Risk)
	}
}

func TestRiskStatusAndGate(t *testing.T) {
	pol := validatorsPolicy(t)
	ins := []Input{mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()), cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
		cmd(t, "alice", `/threatgate risk likelihood=2 impact=3 controls="WAF rule" internal only`)}
	_, esc := history(t, pol, Quota{}, ins...)
	d := &decision{pol: pol, esc: esc, now: t0.Add(time.Hour)}
	if _, desc := d.gate(esc); !strings.Contains(desc, "risk 6 validated") {
		t.Errorf("gate description = %q, want it to ask for the risk to be validated", desc)
	}
	if c := d.card(esc); !c.RiskToValidate {
		t.Errorf("card RiskToValidate = false, want true")
	}
	st := d.statusText()
	for _, want := range []string{"Residual risk: 6 (by alice; likelihood 2 x impact 3; controls: WAF rule; not validated yet)"} {
		if !strings.Contains(st, want) {
			t.Errorf("status text lacks %q:\n%s", want, st)
		}
	}
}

// TestBundleShowsRiskValidation: the bundle says who scored (with the
// likelihood, impact and controls), who validated and who accepted a risk
// above the ceiling, in JSON, Markdown and CSV.
func TestBundleShowsRiskValidation(t *testing.T) {
	pol := validatorsPolicy(t)
	events, esc := history(t, pol, Quota{},
		mrIn(action(MROpen), paths("src/auth/login.go"), secretLine()),
		cmd(t, "ann", "/threatgate artifact threat-model x"), cmd(t, "ann", "/threatgate artifact rollback-plan y"),
		cmd(t, "alice", `/threatgate risk likelihood=4 impact=3 controls="WAF rule, rate limit" public endpoint`),
		cmd(t, "vic", "/threatgate risk --validate checked the WAF rule"),
		cmd(t, "bob", "/approve --check data-sensitivity=none"), cmd(t, "frank", "/approve --check data-sensitivity=none"),
		cmd(t, "dave", "/approve --check data-sensitivity=none risk accepted until the fix"),
	)
	for i := range events {
		events[i].Seq = uint64(i + 1)
	}
	if esc.State != StateApproved {
		t.Fatalf("State = %s, want approved", esc.State)
	}
	b := BuildBundle(esc, events)
	r := b.Risk
	if r == nil || r.By != "alice" || r.Score != 12 || r.Likelihood != 4 || r.Impact != 3 || r.Controls != "WAF rule, rate limit" || !r.Above {
		t.Fatalf("Risk = %+v, want 12 = 4 x 3 by alice with its controls, above the ceiling", r)
	}
	if v := r.Validation; v == nil || v.By != "vic" || v.Note != "checked the WAF rule" || v.Seq == 0 || events[v.Seq-1].Kind != EventRiskValidated {
		t.Errorf("Validation = %+v, want vic's risk_validated event", v)
	}
	if len(r.Acceptances) != 1 || r.Acceptances[0].By != "dave" || r.Acceptances[0].Role != RoleRiskAcceptance {
		t.Errorf("Acceptances = %+v, want dave's risk-acceptance approval", r.Acceptances)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"likelihood":4`, `"impact":3`, `"controls":"WAF rule, rate limit"`, `"validation":{"seq":`, `"acceptances":[{`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("risk JSON lacks %s: %s", want, raw)
		}
	}
	mdText := RenderBundleMarkdown(b)
	for _, want := range []string{"assessed by alice", "Likelihood 4 x impact 3.", "Compensating controls: WAF rule, rate limit", "Validated by vic", "Accepted by dave (leads, risk-acceptance)"} {
		if !strings.Contains(mdText, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if !slices.ContainsFunc(b.Timeline, func(e TimelineEntry) bool { return e.Summary == "residual risk 12 validated: checked the WAF rule" }) {
		t.Errorf("timeline lacks the validation: %+v", b.Timeline)
	}
	files, err := RenderExport(NewExport(t0, t0.Add(48*time.Hour), []*Bundle{b}), "csv")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(files, func(f ExportFile) bool { return f.Name == "risks.csv" })
	if i < 0 {
		t.Fatalf("no risks.csv in %d files", len(files))
	}
	lines := strings.Split(strings.TrimSpace(string(files[i].Data)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "likelihood,impact,controls,validated_by,validated_at,validation_seq,accepted_by") ||
		!strings.Contains(lines[1], `,4,3,"WAF rule, rate limit",vic,`) || !strings.HasSuffix(lines[1], ",dave") {
		t.Errorf("risks.csv =\n%s", files[i].Data)
	}
}

package policies

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPeopleEmails: emails is a list, email a one-address shorthand; both
// are matched without regard to case, and each address names one person.
func TestPeopleEmails(t *testing.T) {
	p, err := Load("p.yaml", []byte(edit(t, "  - {gitlab: alice, email: alice@example.com}\n",
		"  - {gitlab: alice, gitlab_id: 42, emails: [alice@example.com, Alice.Old@Corp.example]}\n  - {gitlab: bob, email: bob@example.com}\n")))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	a := p.Person("id", "alice")
	if !slices.Equal(a.Emails, []string{"alice@example.com", "Alice.Old@Corp.example"}) || a.Email != "alice@example.com" || a.GitLabID != 42 {
		t.Errorf("alice = %+v", a)
	}
	for _, e := range []string{"ALICE.OLD@corp.example", "alice@example.com", " Alice@Example.com"} {
		if got := p.Person("email", e); got != a {
			t.Errorf("Person(email, %q) = %v, want alice", e, got)
		}
	}
	if got := p.Person("email", "bob@example.com"); got == nil || got.ID != "bob" {
		t.Errorf("Person(email, bob) = %v", got)
	}
}

// TestApproverWithoutEmail: an approver whose commits cannot be recognised
// is a load error naming the person's line, not a silent hole.
func TestApproverWithoutEmail(t *testing.T) {
	_, err := Load("p.yaml", []byte(edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice}\n")))
	checkProblems(t, err, []want{{14, 5, "people[0].emails", "alice is in group appsec, which approves tier T1, but has no e-mail address"}})

	// A backup of an approving group stands in, so it needs one too;
	// someone in no powerful group does not.
	src := strings.Replace(goodPolicy, "  appsec: {members: [alice]}\n", "  appsec: {members: [alice], backups: [leads]}\n  leads: {members: [lee]}\n  devs: {members: [dan]}\n", 1) +
		"  - {gitlab: lee}\n  - {gitlab: dan}\n"
	_, err = Load("p.yaml", []byte(src))
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Field != "people[1].emails" || !strings.Contains(ps[0].Msg, "lee is in group leads, which stands in for appsec") {
		t.Errorf("Load = %v, want one problem for lee", err)
	}

	for _, bad := range []string{"{gitlab: alice, email: not-an-address}", "{gitlab: alice, emails: [alice@example.com, 'two words@x']}"} {
		_, err := Load("p.yaml", []byte(edit(t, "{gitlab: alice, email: alice@example.com}", bad)))
		if ps := Problems(err); len(ps) == 0 || !strings.Contains(ps[0].Msg, "want an e-mail address") {
			t.Errorf("%s: Load = %v, want a problem about the address", bad, err)
		}
	}
	_, err = Load("p.yaml", []byte(edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, email: alice@example.com}\n  - {gitlab: mallory, email: ALICE@example.com}\n")))
	if ps := Problems(err); len(ps) != 1 || !strings.Contains(ps[0].Msg, `e-mail "ALICE@example.com" is already given to alice`) {
		t.Errorf("Load(shared address) = %v", err)
	}
	_, err = Load("p.yaml", []byte(edit(t, "  - {gitlab: alice, email: alice@example.com}\n", "  - {gitlab: alice, email: alice@example.com, gitlab_id: 7}\n  - {id: bob, gitlab_id: 7, email: b@example.com}\n")))
	if ps := Problems(err); len(ps) != 2 || !strings.Contains(err.Error(), "gitlab_id 7 is already given to alice") || !strings.Contains(err.Error(), "give the username too") {
		t.Errorf("Load(shared gitlab_id) = %v", err)
	}
}

// TestRedactedEvidence: a signal marked redact keeps the path, the line
// number and the rule, but never the secret, in the evidence and so in
// everything that shows or stores it.
func TestRedactedEvidence(t *testing.T) {
	p := signalPolicy(t, `  - {id: secret, category: c, weight: 10, redact: true, when: {added_lines: ['(?i)api[_-]?key\s*=', 'sk_live_\w+']}}
  - {id: plain, category: c, weight: 1, when: {added_lines: ['(?i)api[_-]?key\s*=']}}
`)
	mr := &MergeRequest{Changes: []Change{
		added("config/app.py", "@@ -0,0 +1,3 @@\n+x = 1\n+API_KEY = \"sk_live_123456789\"\n+  token: sk_live_abcdefghij # prod\n"),
	}}
	res := p.Evaluate(mr)
	if len(res.Signals) != 2 {
		t.Fatalf("signals = %+v", res.Signals)
	}
	got := res.Signals[0].Evidence
	want := []string{
		`added line config/app.py:2 matches "(?i)api[_-]?key\\s*=": API_****************************`,
		`added line config/app.py:3 matches "sk_live_\\w+": token: sk_l****************************`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("redacted evidence:\n got %q\nwant %q", got, want)
	}
	js, _ := json.Marshal(res)
	for _, secret := range []string{"sk_live_123456789", "live_abcdefghij", "123456789", "# prod"} {
		if strings.Contains(strings.Join(got, "\n"), secret) || strings.Contains(string(js[:strings.Index(string(js), `"plain"`)]), secret) {
			t.Errorf("evidence shows %q", secret)
		}
	}
	// A signal without redact shows a line masked too when a redacting
	// signal finds a secret in it.
	if ev := res.Signals[1].Evidence; len(ev) != 1 || strings.Contains(ev[0], "sk_live") || !strings.Contains(ev[0], "API_****") {
		t.Errorf("plain evidence = %q", ev)
	}
	// Short and odd matches never panic and never show more than one
	// character of the match.
	for _, tt := range []struct {
		line  string
		start int
		want  string
	}{
		{"pw=", 0, "p" + maskRun},
		{"x pw", 2, "x p" + maskRun},
		{"", 0, maskRun},
		{"héllo wörld", 0, "héll" + maskRun},
		{"abc", 99, "a" + maskRun},
	} {
		if got := Mask(tt.line, tt.start); got != tt.want {
			t.Errorf("Mask(%q, %d) = %q, want %q", tt.line, tt.start, got, tt.want)
		}
	}
}

// TestFormatDurationRoundTrips: what FormatDuration writes, ParseDuration
// reads back as the same duration.
func TestFormatDurationRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{time.Minute, 90 * time.Minute, 48 * time.Hour, 14 * 24 * time.Hour, 3650 * 24 * time.Hour, 3700 * 24 * time.Hour, 88800 * time.Hour, time.Hour + time.Second} {
		got, err := ParseDuration(FormatDuration(d))
		if err != nil || got != d {
			t.Errorf("ParseDuration(FormatDuration(%s) = %q) = %s, %v", d, FormatDuration(d), got, err)
		}
	}
}

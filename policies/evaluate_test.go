package policies

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// signalPolicy loads a policy with the given signals (YAML list items,
// indented by two) and one tier that any score reaches.
func signalPolicy(t *testing.T, signals string) *Policy {
	t.Helper()
	return tierPolicy(t, signals, "  - {id: T1, when: {min_score: 1}, approvals: [{group: g}]}\n")
}

func tierPolicy(t *testing.T, signals, tiers string) *Policy {
	t.Helper()
	src := "version: 1\nsignals:\n" + signals + "tiers:\n" + tiers +
		"groups:\n  g: {members: [a]}\npeople:\n  - {gitlab: a, email: a@example.com}\n"
	p, err := Load("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Load:\n%s\n%v", src, err)
	}
	return p
}

func modified(path, diff string) Change { return Change{OldPath: path, NewPath: path, Diff: diff} }
func added(path, diff string) Change {
	return Change{OldPath: path, NewPath: path, Diff: diff, NewFile: true}
}
func deleted(path string) Change {
	return Change{OldPath: path, NewPath: path, Diff: "@@ -1 +0,0 @@\n-x\n", DeletedFile: true}
}
func renamed(from, to string) Change {
	return Change{OldPath: from, NewPath: to, RenamedFile: true}
}

func changes(cs ...Change) *MergeRequest {
	return &MergeRequest{Title: "t", TargetBranch: "main", Changes: cs}
}

// fired returns the evidence of signal id, and whether it fired.
func fired(r Result, id string) ([]string, bool) {
	for _, f := range r.Signals {
		if f.ID == id {
			return f.Evidence, true
		}
	}
	return nil, false
}

func TestEvaluatePaths(t *testing.T) {
	p := signalPolicy(t, `  - {id: auth, category: c, weight: 10, when: {paths: ["**/auth/**", "**/session/*.go"]}}
`)
	for _, tt := range []struct {
		name     string
		change   Change
		evidence []string // nil: must not fire
	}{
		{"modified in the directory", modified("src/auth/login.go", ""),
			[]string{`path src/auth/login.go matches "**/auth/**"`}},
		{"second pattern", modified("web/session/store.go", ""),
			[]string{`path web/session/store.go matches "**/session/*.go"`}},
		{"new file", added("auth/new.go", "@@ -0,0 +1 @@\n+package auth\n"),
			[]string{`path auth/new.go matches "**/auth/**"`}},
		{"renamed out of the directory: the old path counts", renamed("src/auth/token.go", "src/identity/token.go"),
			[]string{`path src/auth/token.go (renamed to src/identity/token.go) matches "**/auth/**"`}},
		{"renamed into the directory", renamed("src/util/token.go", "src/auth/token.go"),
			[]string{`path src/auth/token.go (renamed from src/util/token.go) matches "**/auth/**"`}},
		{"deleted", deleted("src/auth/basic.go"),
			[]string{`path src/auth/basic.go (deleted) matches "**/auth/**"`}},
		{"a similar name is not the directory", modified("src/authz/login.go", ""), nil},
		{"nested too deep for *", modified("web/session/sub/store.go", ""), nil},
		{"elsewhere", modified("README.md", ""), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := p.Evaluate(changes(tt.change))
			ev, ok := fired(r, "auth")
			if ok != (tt.evidence != nil) {
				t.Fatalf("auth fired = %v, want %v (result %+v)", ok, tt.evidence != nil, r)
			}
			if !slices.Equal(ev, tt.evidence) {
				t.Errorf("evidence = %q, want %q", ev, tt.evidence)
			}
		})
	}
}

func TestEvaluateLabels(t *testing.T) {
	p := signalPolicy(t, `  - {id: sec, category: declared, weight: 10, when: {labels: ["security", "security::*", "*::critical", "team-*-sec"]}}
`)
	for _, tt := range []struct {
		labels []string
		want   []string // evidence; nil: must not fire
	}{
		{[]string{"security"}, []string{`label "security"`}},
		{[]string{"backend", "security::high"}, []string{`label "security::high"`}},
		{[]string{"severity::critical"}, []string{`label "severity::critical"`}},
		{[]string{"team-payments-sec"}, []string{`label "team-payments-sec"`}},
		{[]string{"team-sec"}, nil}, // "team-" and "-sec" cannot share the dash
		{[]string{"security::"}, []string{`label "security::"`}},
		{[]string{"Security"}, nil}, // labels are case-sensitive
		{[]string{"securityteam", "insecurity"}, nil},
		{[]string{"security", "security::low"}, []string{`label "security"`, `label "security::low"`}},
		{nil, nil},
	} {
		mr := changes()
		mr.Labels = tt.labels
		ev, ok := fired(p.Evaluate(mr), "sec")
		if ok != (tt.want != nil) || !slices.Equal(ev, tt.want) {
			t.Errorf("labels %q: fired %v, evidence %q; want %q", tt.labels, ok, ev, tt.want)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"security", "security", true},
		{"security", "security::high", false},
		{"*", "", true},
		{"*", "anything", true},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"a*b*c", "abxbc", true},
		{"a*b*c", "acb", false},
		{"*x*x", "xx", true},
		{"*x*x", "x", false},
		{"**", "a", true},
	} {
		if got := wildcard(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcard(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestEvaluateTargetBranchesAndProjects(t *testing.T) {
	p := signalPolicy(t, `  - {id: release, category: c, weight: 10, when: {target_branches: [production, "release/*"]}}
  - {id: payments, category: c, weight: 10, when: {projects: ["acme/payments", "acme/billing/**"]}}
`)
	for _, tt := range []struct {
		name string
		mr   MergeRequest
		want []string // fired signals with their evidence
	}{
		{"production", MergeRequest{TargetBranch: "production"},
			[]string{`release: target branch "production" matches "production"`}},
		{"release branch", MergeRequest{TargetBranch: "release/2.4"},
			[]string{`release: target branch "release/2.4" matches "release/*"`}},
		{"* stays in one segment", MergeRequest{TargetBranch: "release/2.4/hotfix"}, nil},
		{"main", MergeRequest{TargetBranch: "main"}, nil},
		{"no target branch", MergeRequest{}, nil},
		{"project from references.full", MergeRequest{References: refs("acme/payments!12")},
			[]string{`payments: project "acme/payments" matches "acme/payments"`}},
		{"project in a subgroup from references.full", MergeRequest{References: refs("acme/billing/invoices!3")},
			[]string{`payments: project "acme/billing/invoices" matches "acme/billing/**"`}},
		{"project from web_url", MergeRequest{WebURL: "https://gitlab.example.com/acme/payments/-/merge_requests/12"},
			[]string{`payments: project "acme/payments" matches "acme/payments"`}},
		{"path_with_namespace first", MergeRequest{PathWithNamespace: "acme/payments", References: refs("acme/other!1")},
			[]string{`payments: project "acme/payments" matches "acme/payments"`}},
		{"other project", MergeRequest{References: refs("acme/payments-ui!4")}, nil},
		{"no project known", MergeRequest{}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range p.Evaluate(&tt.mr).Signals {
				got = append(got, f.ID+": "+strings.Join(f.Evidence, "; "))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("fired %q, want %q", got, tt.want)
			}
		})
	}
}

func refs(full string) struct {
	Full string `json:"full,omitempty"`
} {
	return struct {
		Full string `json:"full,omitempty"`
	}{full}
}

func TestMergeRequestProject(t *testing.T) {
	for _, tt := range []struct {
		mr   MergeRequest
		want string
	}{
		{MergeRequest{References: refs("group/sub/proj!12")}, "group/sub/proj"},
		{MergeRequest{WebURL: "https://gitlab.example.com/group/sub/proj/-/merge_requests/12"}, "group/sub/proj"},
		{MergeRequest{WebURL: "http://localhost:8080/g/p/-/merge_requests/1"}, "g/p"},
		{MergeRequest{WebURL: "https://gitlab.example.com/no-mr-here"}, ""},
		{MergeRequest{References: refs("!12")}, ""},
		{MergeRequest{}, ""},
	} {
		if got := tt.mr.Project(); got != tt.want {
			t.Errorf("Project() of %+v = %q, want %q", tt.mr, got, tt.want)
		}
	}
}

func TestEvaluateTitleDescriptionAuthors(t *testing.T) {
	p := signalPolicy(t, `  - {id: cve, category: declared, weight: 10, when: {title: ['(?i)\bcve-\d{4}-\d+', '(?i)security fix']}}
  - {id: desc, category: declared, weight: 10, when: {description: ['(?i)\bpentest\b']}}
  - {id: bot, category: c, weight: 10, when: {authors: [renovate-bot, dependabot]}}
`)
	mr := &MergeRequest{Title: "Fix CVE-2024-3094 in xz", Description: "Found in the Q1 PENTEST.", Author: User{Username: "renovate-bot"}}
	r := p.Evaluate(mr)
	want := []Fired{
		{ID: "cve", Category: "declared", Weight: 10, Evidence: []string{`title matches "(?i)\\bcve-\\d{4}-\\d+": "CVE-2024-3094"`}},
		{ID: "desc", Category: "declared", Weight: 10, Evidence: []string{`description matches "(?i)\\bpentest\\b": "PENTEST"`}},
		{ID: "bot", Category: "c", Weight: 10, Evidence: []string{`author "renovate-bot"`}},
	}
	if !reflect.DeepEqual(r.Signals, want) {
		t.Errorf("Signals =\n%+v\nwant\n%+v", r.Signals, want)
	}
	if r.Score != 30 {
		t.Errorf("Score = %d, want 30", r.Score)
	}

	r = p.Evaluate(&MergeRequest{Title: "Refactor", Description: "pentesting later", Author: User{Username: "renovate"}})
	if len(r.Signals) != 0 {
		t.Errorf("Signals = %+v, want none", r.Signals)
	}
}

func TestEvaluateAddedLines(t *testing.T) {
	p := signalPolicy(t, `  - {id: secret, category: c, weight: 10, when: {added_lines: ['password\s*=', 'BEGIN PRIVATE KEY']}}
`)
	diff := `--- a/app/config.py
+++ b/app/config.py password = header, not a line
@@ -10,6 +10,7 @@ class Config:
 # context password = 1 is not added
-password = "old"
+password = "new"
 debug = False
+user = "svc"
@@ -40,3 +41,5 @@ def load():
 x = 1
+++password = 3
---password = 4
+y = 2
\ No newline at end of file
+password = 5
`
	r := p.Evaluate(changes(modified("app/config.py", diff)))
	ev, ok := fired(r, "secret")
	if !ok {
		t.Fatalf("secret did not fire: %+v", r)
	}
	want := []string{
		`added line app/config.py:11 matches "password\\s*=": password = "new"`,
		// Inside a hunk "+++" is an added line starting "++".
		`added line app/config.py:42 matches "password\\s*=": ++password = 3`,
		// "\ No newline" takes no line number.
		`added line app/config.py:44 matches "password\\s*=": password = 5`,
	}
	if !slices.Equal(ev, want) {
		t.Errorf("evidence =\n%s\nwant\n%s", strings.Join(ev, "\n"), strings.Join(want, "\n"))
	}

	for _, d := range []string{
		"@@ -1,2 +1,2 @@\n-password = 1\n password = 2\n",      // removed and context
		"--- a/x\n+++ b/x password = 1\n@@ -1 +1 @@\n-a\n+b\n", // header before the hunk
		"@@ -1 +1 @@\n-a\n+b\n+++ b/y password = 1\n",          // header after the hunk is done
		"@@ -1,2 +1,2 @@\n-BEGIN PRIVATE\n+KEY\n",              // across lines
		"Binary files a/key.der and b/key.der differ\n",        // binary
		"",                                   // no diff (too large, say)
		"@@ -1 +1 @@\r\n-a\r\n+password\r\n", // no '='
	} {
		if ev, ok := fired(p.Evaluate(changes(modified("x", d))), "secret"); ok {
			t.Errorf("diff %q fired: %q", d, ev)
		}
	}

	// CRLF diffs and lines before any hunk header (hand-written diffs).
	ev, _ = fired(p.Evaluate(changes(modified("x.ini", "@@ -0,0 +1,2 @@\r\n+a\r\n+password = 1\r\n"))), "secret")
	if want := []string{`added line x.ini:2 matches "password\\s*=": password = 1`}; !slices.Equal(ev, want) {
		t.Errorf("CRLF evidence = %q, want %q", ev, want)
	}
	ev, _ = fired(p.Evaluate(changes(modified("x.ini", "+password = 1\n"))), "secret")
	if want := []string{`added line x.ini:0 matches "password\\s*=": password = 1`}; !slices.Equal(ev, want) {
		t.Errorf("headerless evidence = %q, want %q", ev, want)
	}
}

func TestDiffLines(t *testing.T) {
	diff := "diff --git a/f b/f\nindex 1..2 100644\n--- a/f\n+++ b/f\n" +
		"@@ -1,3 +1,3 @@\n a\n--- removed SQL comment\n+++ added counter\n c\n" +
		"@@ -20 +20,2 @@\n-old\n+new\n+\n\\ No newline at end of file\n"
	var got []string
	diffLines(diff, func(op byte, text string, n int) {
		got = append(got, fmt.Sprintf("%c%d:%s", op, n, text))
	})
	want := []string{"-0:-- removed SQL comment", "+2:++ added counter", "-0:old", "+20:new", "+21:"}
	if !slices.Equal(got, want) {
		t.Errorf("diffLines = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		h                     string
		start, oldLen, newLen int
	}{
		{"@@ -1,3 +1,4 @@", 1, 3, 4},
		{"@@ -0,0 +1 @@", 1, 0, 1},
		{"@@ -5 +7,0 @@ func x()", 7, 1, 0},
		{"@@ garbage", 0, 0, 0},
	} {
		s, o, n := hunkHeader(tt.h)
		if s != tt.start || o != tt.oldLen || n != tt.newLen {
			t.Errorf("hunkHeader(%q) = %d, %d, %d; want %d, %d, %d", tt.h, s, o, n, tt.start, tt.oldLen, tt.newLen)
		}
	}
}

func TestEvaluatePathsScopeAddedLines(t *testing.T) {
	p := signalPolicy(t, `  - {id: ci-secret, category: c, weight: 10, when: {paths: [".gitlab-ci.yml"], added_lines: ['TOKEN']}}
`)
	inCI := modified(".gitlab-ci.yml", "@@ -1 +1,2 @@\n a\n+  - echo $TOKEN\n")
	elsewhere := modified("main.go", "@@ -1 +1,2 @@\n a\n+var TOKEN = x\n")
	quietCI := modified(".gitlab-ci.yml", "@@ -1 +1,2 @@\n a\n+  - make\n")

	ev, ok := fired(p.Evaluate(changes(elsewhere, inCI)), "ci-secret")
	want := []string{`path .gitlab-ci.yml matches ".gitlab-ci.yml"`, `added line .gitlab-ci.yml:2 matches "TOKEN": - echo $TOKEN`}
	if !ok || !slices.Equal(ev, want) {
		t.Errorf("evidence = %q, want %q", ev, want)
	}
	// The path matches and a line matches, but not in the same file.
	if ev, ok := fired(p.Evaluate(changes(elsewhere, quietCI)), "ci-secret"); ok {
		t.Errorf("fired on a line outside the paths: %q", ev)
	}
}

func TestEvaluateMinChangedLines(t *testing.T) {
	p := signalPolicy(t, `  - {id: big, category: c, weight: 10, when: {min_changed_lines: 4}}
`)
	three := modified("a", "--- a/a\n+++ b/a\n@@ -1,3 +1,3 @@\n x\n-y\n+z\n+w\n")
	one := modified("b", "@@ -1 +0,0 @@\n-gone\n")
	if _, ok := fired(p.Evaluate(changes(three)), "big"); ok {
		t.Error("3 changed lines fired min_changed_lines: 4 (headers and context must not count)")
	}
	ev, ok := fired(p.Evaluate(changes(three, one)), "big")
	if want := []string{"4 changed lines (at least 4)"}; !ok || !slices.Equal(ev, want) {
		t.Errorf("evidence = %q, want %q", ev, want)
	}
}

func TestEvaluateConditionsCombine(t *testing.T) {
	// OR within a condition, AND across conditions.
	p := signalPolicy(t, `  - id: prod-auth
    category: c
    weight: 10
    when:
      paths: ["auth/**", "session/**"]
      target_branches: [production, "release/*"]
      labels: ["needs-review"]
`)
	base := func() *MergeRequest {
		return &MergeRequest{TargetBranch: "release/1", Labels: Labels{"needs-review"}, Changes: []Change{modified("session/x.go", "")}}
	}
	if _, ok := fired(p.Evaluate(base()), "prod-auth"); !ok {
		t.Error("all conditions hold (second entry of each list) but the signal did not fire")
	}
	for name, breakIt := range map[string]func(*MergeRequest){
		"path":   func(mr *MergeRequest) { mr.Changes[0] = modified("web/x.go", "") },
		"branch": func(mr *MergeRequest) { mr.TargetBranch = "main" },
		"label":  func(mr *MergeRequest) { mr.Labels = nil },
	} {
		mr := base()
		breakIt(mr)
		if _, ok := fired(p.Evaluate(mr), "prod-auth"); ok {
			t.Errorf("fired although the %s condition fails", name)
		}
	}
}

func TestSelectTier(t *testing.T) {
	p := tierPolicy(t, `  - {id: a, category: c, weight: 60, when: {labels: [a]}}
  - {id: b, category: c, weight: 30, when: {labels: [b]}}
  - {id: c, category: c, weight: 5, when: {labels: [c]}}
`, `  - {id: T3, when: {min_score: 90, any_signals: [a]}, approvals: [{group: g}]}
  - {id: T2, when: {min_score: 50}, approvals: [{group: g}]}
  - {id: T1c, when: {any_signals: [c]}, approvals: [{group: g}]}
  - {id: T1, when: {min_score: 30}, approvals: [{group: g}]}
`)
	for _, tt := range []struct {
		labels []string
		score  int
		tier   string
	}{
		{[]string{"a", "b"}, 90, "T3"},      // min_score and any_signals both hold
		{[]string{"a", "b", "c"}, 95, "T3"}, // first match wins over T2, T1c and T1
		{[]string{"a"}, 60, "T2"},           // any_signals holds but min_score does not
		{[]string{"b", "c"}, 35, "T1c"},     // any_signals alone
		{[]string{"c"}, 5, "T1c"},           //
		{[]string{"b"}, 30, "T1"},           // min_score alone, exactly reached
		{nil, 0, "none"},                    // nothing fired
	} {
		mr := changes()
		mr.Labels = tt.labels
		r := p.Evaluate(mr)
		got := "none"
		if r.Tier != nil {
			got = r.Tier.ID
		}
		if got != tt.tier || r.Score != tt.score {
			t.Errorf("labels %q: Tier, Score = %s, %d; want %s, %d", tt.labels, got, r.Score, tt.tier, tt.score)
		}
	}
	if got := p.Select(29, nil); got != nil {
		t.Errorf("Select(29, nil) = %s, want nil", got.ID)
	}
	if got := p.Select(1000, []Fired{{ID: "b"}}); got == nil || got.ID != "T2" {
		t.Errorf("Select(1000, [b]) = %v, want T2", got)
	}
}

func TestEvaluateCapsEvidence(t *testing.T) {
	p := signalPolicy(t, `  - {id: src, category: c, weight: 10, when: {paths: ["src/**"]}}
  - {id: todo, category: c, weight: 10, when: {added_lines: [TODO]}}
  - {id: lbl, category: c, weight: 10, when: {labels: ["*"]}}
`)
	mr := changes()
	var diff strings.Builder
	diff.WriteString("@@ -0,0 +1,25 @@\n")
	for i := range 25 {
		mr.Changes = append(mr.Changes, modified(fmt.Sprintf("src/f%02d.go", i), ""))
		mr.Labels = append(mr.Labels, fmt.Sprintf("l%02d", i))
		fmt.Fprintf(&diff, "+TODO %d\n", i+1)
	}
	mr.Changes = append(mr.Changes, added("notes.txt", diff.String()))
	r := p.Evaluate(mr)
	for _, tt := range []struct {
		id   string
		n    int
		last string
	}{
		{"src", 11, "and 15 more paths"},
		{"todo", 11, "and 15 more added lines"},
		{"lbl", 11, "and 15 more labels"},
	} {
		ev, _ := fired(r, tt.id)
		if len(ev) != tt.n || ev[len(ev)-1] != tt.last {
			t.Errorf("%s: %d evidence items ending %q, want %d ending %q", tt.id, len(ev), ev[len(ev)-1], tt.n, tt.last)
		}
	}
	if ev, _ := fired(r, "todo"); ev[9] != `added line notes.txt:10 matches "TODO": TODO 10` {
		t.Errorf("todo evidence[9] = %q", ev[9])
	}
}

// TestEvaluateConcurrently: one policy, many goroutines, same results.
// Run with -race to check the claim of the doc comment.
func TestEvaluateConcurrently(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	mr := changes(modified("internal/auth/x.go", "@@ -1 +1,2 @@\n a\n+token = \"abcdefgh1234\"\n"), renamed("auth/a", "b/a"))
	want := p.Evaluate(mr)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got := p.Evaluate(mr); !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent Evaluate = %+v, want %+v", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if mr.Changes[0].NewPath != "internal/auth/x.go" || len(mr.Changes) != 2 {
		t.Error("Evaluate modified the MR")
	}
}

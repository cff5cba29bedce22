package policies

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// isProblems reports whether err is a *Problem or a join of them, and
// nothing else.
func isProblems(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !isProblems(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	p, ok := err.(*Problem)
	return ok && p.Msg != ""
}

// fuzzMR is evaluated by every policy FuzzLoad manages to load.
var fuzzMR = &MergeRequest{
	Title:        "Fix CVE-2024-0001 in auth",
	Description:  "security fix",
	TargetBranch: "release/1.2",
	Labels:       Labels{"security::high", "backend"},
	Author:       User{Username: "alice"},
	WebURL:       "https://gitlab.example.com/acme/app/-/merge_requests/1",
	Changes: []Change{
		{OldPath: "src/auth/login.go", NewPath: "src/identity/login.go", RenamedFile: true,
			Diff: "@@ -1,2 +1,3 @@\n package auth\n-x\n+password = \"hunter2hunter2\"\n+++y\n"},
		{OldPath: ".gitlab-ci.yml", NewPath: ".gitlab-ci.yml", Diff: "@@ -0,0 +1 @@\n+curl x | sh\n"},
		{OldPath: "docs/a.md", NewPath: "docs/a.md", DeletedFile: true, Diff: "@@ -1 +0,0 @@\n-a\n"},
	},
}

// FuzzLoad: the loader never panics, and returns a policy or problems, never
// both and never neither.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add(DefaultYAML())
	f.Add([]byte(""))
	f.Add([]byte("version: 1\nsignals: &a [*a]\n"))
	f.Add([]byte("schedule: {sweep: \"TZ=UTC\", digest: \"CRON_TZ=Europe/Berlin\"}\n"))
	f.Add([]byte("people:\n  - {gitlab: a, slack: U1, hours: \"09:00-24:00\", email: a@example.com}\n  - {gitlab: a, slack: U1, timezone: Local, email: a@example.com}\n"))
	f.Add([]byte("tiers:\n  - {id: T1, when: {min_score: 1}, decision: 1h, approvals: []}\n  - [x]\n"))
	f.Add([]byte("people:\n  - {gitlab: a, gitlab_id: 7, emails: [a@x, A@X, 'b c']}\n  - {id: b, gitlab_id: 7, email: [a@x]}\nsignals:\n  - {id: s, category: c, weight: 1, redact: maybe, when: {added_lines: [k]}}\n"))
	f.Add([]byte("signals:\n  - {id: s, weight: x, when: {paths: [\"{a,b}/**/[c\"], added_lines: [\"(?P<n>\"]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load("fuzz.yaml", data)
		switch {
		case err == nil && p == nil:
			t.Fatal("Load returned neither a policy nor an error")
		case err != nil && p != nil:
			t.Fatalf("Load returned a policy and an error: %v", err)
		case err != nil:
			if !isProblems(err) || len(Problems(err)) == 0 {
				t.Fatalf("Load error is not made of *Problem: %#v", err)
			}
		default:
			res := p.Evaluate(fuzzMR)
			if res.Tier != nil && p.Tier(res.Tier.ID) != res.Tier {
				t.Fatalf("Evaluate chose tier %q, which the policy does not know", res.Tier.ID)
			}
		}
	})
}

// FuzzParseMergeRequest: the MR parser never panics and returns an MR or
// problems; the default policy evaluates whatever it returns.
func FuzzParseMergeRequest(f *testing.F) {
	for _, name := range []string{"testdata/mr/auth-change.json", "testdata/mr/docs-only.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"labels": [{"title": "security"}, "x", {"name": "y"}], "changes": []}`))
	f.Add([]byte(`{"changes": [{"new_path": "a", "diff": "@@ -1,2 +1,2 @@\n---x\n+++y\n\\ No newline\n"}]}`))
	f.Add([]byte(`{"updated_at": "x", "changes": []}`))
	f.Add([]byte(`{"changes": []} trailing`))
	f.Add([]byte(`{"title": "\"`))
	f.Add([]byte(`null`))
	pol, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mr, err := ParseMergeRequest("fuzz.json", data)
		switch {
		case err == nil && mr == nil:
			t.Fatal("ParseMergeRequest returned neither an MR nor an error")
		case err != nil && mr != nil:
			t.Fatalf("ParseMergeRequest returned an MR and an error: %v", err)
		case err != nil:
			if !isProblems(err) {
				t.Fatalf("ParseMergeRequest error is not made of *Problem: %#v", err)
			}
			for _, p := range Problems(err) {
				if p.Line < 0 || p.Col < 0 || (p.Line > 0) != (p.Col > 0) {
					t.Fatalf("bad position in %q", p.Error())
				}
			}
		default:
			pol.Evaluate(mr)
			mr.Project()
		}
	})
}

// FuzzMask: masking never panics, always ends in the mask, and never shows
// more of the line than what comes before the match and four characters
// of it.
func FuzzMask(f *testing.F) {
	f.Add("API_KEY = \"sk_live_123\"", 0)
	f.Add("x pw", 2)
	f.Add("héllo wörld", 3)
	f.Add("", 0)
	f.Add("abc", -5)
	f.Fuzz(func(t *testing.T, line string, start int) {
		got := Mask(line, start)
		if !strings.HasSuffix(got, maskRun) {
			t.Fatalf("Mask(%q, %d) = %q, no mask", line, start, got)
		}
		if kept := len(got) - len(maskRun); kept > len(line) || got[:kept] != line[:kept] {
			t.Fatalf("Mask(%q, %d) = %q, not a prefix", line, start, got)
		}
		if s := start; s >= 0 && s <= len(line) && utf8.RuneCountInString(got[:len(got)-len(maskRun)]) > utf8.RuneCountInString(line[:s])+4 {
			t.Fatalf("Mask(%q, %d) = %q shows more than four characters of the match", line, start, got)
		}
	})
}

package policies

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

// benchRules returns n realistic path rules: deep ** rules, extension
// rules, directory prefixes, brace sets and exact files.
func benchRules(n int) []string {
	templates := []string{
		"**/module%d/auth/**",
		"services/svc%d/**/*.sql",
		"**/*.ext%d",
		"infra/env%d/**",
		"**/Dockerfile.%d",
		"pkg/p%d/{crypto,tls}/**",
		"config/%d/*.yaml",
		".gitlab/ci/job%d.yml",
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(templates[i%len(templates)], i)
	}
	return out
}

// benchMR returns an MR with n changed files spread over a few hundred
// directories, some of which the rules match.
func benchMR(n int) *MergeRequest {
	mr := &MergeRequest{IID: 1, Title: "big refactor", TargetBranch: "main", PathWithNamespace: "g/p"}
	for i := range n {
		var p string
		switch i % 5 {
		case 0:
			p = fmt.Sprintf("services/svc%d/internal/pkg%d/file%d.go", i%40, i%7, i)
		case 1:
			p = fmt.Sprintf("web/src/components/c%d/part%d/view%d.tsx", i%60, i%5, i)
		case 2:
			p = fmt.Sprintf("pkg/p%d/crypto/impl%d.go", i%30, i)
		case 3:
			p = fmt.Sprintf("infra/env%d/modules/m%d/main%d.tf", i%20, i%9, i)
		default:
			p = fmt.Sprintf("lib/module%d/auth/session%d.py", i%50, i)
		}
		mr.Changes = append(mr.Changes, Change{OldPath: p, NewPath: p})
	}
	return mr
}

func benchPolicy(tb testing.TB, rules []string) *Policy {
	tb.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nsignals:\n")
	for i := 0; i < len(rules); i += 4 {
		b.WriteString(fmt.Sprintf("  - id: s%d\n    category: access-control\n    weight: 1\n    when:\n      paths:\n", i))
		for _, r := range rules[i:min(i+4, len(rules))] {
			b.WriteString(fmt.Sprintf("        - %q\n", r))
		}
	}
	b.WriteString("tiers:\n  - id: T1\n    when: {min_score: 1}\n    approvals: [{group: g}]\ngroups:\n  g: {members: [a]}\npeople:\n  - {gitlab: a, email: a@example.com}\n")
	p, err := Load("bench.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestBenchPolicyAgreesWithNaive makes sure the benchmark compares like with
// like: the compiled set finds exactly the matches the naive loop finds.
func TestBenchPolicyAgreesWithNaive(t *testing.T) {
	rules := benchRules(200)
	mr := benchMR(2000)
	p := benchPolicy(t, rules)
	res := p.Evaluate(mr)
	fired := map[string]bool{}
	for _, f := range res.Signals {
		fired[f.ID] = true
	}
	for i := 0; i < len(rules); i += 4 {
		want := false
		for _, c := range mr.Changes {
			for _, r := range rules[i:min(i+4, len(rules))] {
				if ok, _ := doublestar.Match(r, c.NewPath); ok {
					want = true
				}
			}
		}
		if id := fmt.Sprintf("s%d", i); fired[id] != want {
			t.Errorf("signal %s fired = %v, naive loop says %v", id, fired[id], want)
		}
	}
	if len(res.Signals) == 0 {
		t.Fatal("no signal fired; the benchmark would measure nothing")
	}
}

// BenchmarkEvaluate classifies an MR of 10,000 files against 200 path rules
// with the compiled glob set. Target: under 5 ms per MR.
func BenchmarkEvaluate(b *testing.B) {
	p := benchPolicy(b, benchRules(200))
	mr := benchMR(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p.Evaluate(mr)
	}
}

// BenchmarkNaiveDoublestar is the baseline: one doublestar.Match per file,
// path and rule.
func BenchmarkNaiveDoublestar(b *testing.B) {
	rules := benchRules(200)
	mr := benchMR(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		hits := 0
		for _, c := range mr.Changes {
			for _, r := range rules {
				if ok, _ := doublestar.Match(r, c.NewPath); ok {
					hits++
				}
			}
		}
		_ = hits
	}
}

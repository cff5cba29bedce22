package policies

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
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

// monorepoMR returns an MR with n changed files spread over about 2,200
// directories (4,700 with their parents) of a monorepo (services, web, libraries, Terraform modules,
// docs) a few levels deep, with the file names a default policy looks for
// (auth and crypto directories, migrations, manifests, CI files,
// Dockerfiles, Kubernetes manifests, keys) among ordinary ones. It is the
// same MR every time. With diffs, every file adds a few lines, and a few
// of them add a secret or a weak hash.
func monorepoMR(n int, diffs bool) *MergeRequest {
	r := rand.New(rand.NewPCG(14, 14))
	tops := []string{"services", "web/src", "libs", "infra/terraform/modules", "tools", "docs", "deploy", "internal", "pkg", "cmd"}
	mids := []string{"api", "internal", "handlers", "models", "store", "auth", "session", "crypto", "migrations", "k8s",
		"helm", "config", "util", "components", "views", "tests", "testdata", "scripts", "ci", "keys",
		"tls", "payments", "billing", "users", "search", "cache", "queue", "events", "metrics", "logging"}
	names := []string{"main.go", "handler.go", "handler_test.go", "index.ts", "App.tsx", "view.jsx", "model.py", "__init__.py",
		"schema.rb", "README.md", "Dockerfile", "Dockerfile.dev", "docker-compose.yml", "go.mod", "go.sum", "package.json",
		"package-lock.json", "requirements-dev.txt", "values.yaml", "deployment.yaml", "main.tf", "variables.tf", "001_init.sql",
		"server.key", "cert.pem", "config.conf", "style.css", "logo.svg", "Makefile", ".gitlab-ci.yml", "CODEOWNERS",
		"policy.rego", "build.gradle.kts", "notes.txt"}
	dirs := make([]string, 0, 2500)
	for len(dirs) < cap(dirs) {
		d := tops[r.IntN(len(tops))]
		for range 1 + r.IntN(4) {
			m := mids[r.IntN(len(mids))]
			if r.IntN(3) == 0 {
				m = fmt.Sprintf("%s%d", m, r.IntN(50))
			}
			d += "/" + m
		}
		dirs = append(dirs, d)
	}
	mr := &MergeRequest{IID: 1, Title: "Move the services to the new layout", TargetBranch: "main", PathWithNamespace: "acme/monorepo",
		Author: User{Username: "dev"}}
	mr.Changes = make([]Change, 0, n)
	for i := range n {
		p := dirs[r.IntN(len(dirs))] + "/" + names[r.IntN(len(names))]
		if r.IntN(4) == 0 {
			p = fmt.Sprintf("%s/f%d_%s", dirs[r.IntN(len(dirs))], i, names[r.IntN(len(names))])
		}
		c := Change{OldPath: p, NewPath: p}
		if r.IntN(50) == 0 { // a move
			c.OldPath = "old/" + p
			c.RenamedFile = true
		}
		if diffs {
			added := fmt.Sprintf("+\tvalue%d := compute(%d)\n+\treturn value%d, nil\n", i, i, i)
			switch {
			case i%997 == 0:
				added += fmt.Sprintf("+api_key = \"sk_live_%08dabcdefgh\"\n", i)
			case i%501 == 0:
				added += "+\th := md5.New()\n"
			}
			c.Diff = "@@ -10,2 +10,4 @@ func f() {\n \tx := 1\n" + added + " }\n"
		}
		mr.Changes = append(mr.Changes, c)
	}
	return mr
}

// TestMonorepoMRAgreesWithNaive: on the benchmark MR, the compiled set of
// the default policy's path rules matches every path exactly as one
// doublestar.Match per rule does.
func TestMonorepoMRAgreesWithNaive(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	mr := monorepoMR(10_000, false)
	if testing.Short() {
		mr.Changes = mr.Changes[:2000]
	}
	m := p.paths.matcher(len(mr.Changes))
	hits := 0
	for _, c := range mr.Changes {
		for _, path := range []string{c.NewPath, c.OldPath} {
			got := m.match(nil, path)
			slices.Sort(got)
			want := naiveMatch(p.paths.patterns, path)
			if !slices.Equal(got, want) {
				t.Fatalf("path %q: globSet matched %v, doublestar.Match %v", path, got, want)
			}
			hits += len(got)
		}
	}
	if hits == 0 {
		t.Fatal("no rule matched; the benchmark would measure nothing")
	}
}

// BenchmarkClassify classifies 10,000-file MRs (the monorepo one, and the
// one of BenchmarkEvaluate) with the default policy and with the 200-rule
// policy of BenchmarkEvaluate: "compiled" is Policy.Evaluate, the whole
// classification; "naive" is the baseline, one doublestar.Match per path
// (new and old) and path rule and nothing else. Target: the default
// policy under 5 ms on the monorepo MR.
func BenchmarkClassify(b *testing.B) {
	def, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, pol := range []struct {
		name string
		p    *Policy
	}{{"default", def}, {"rules200", benchPolicy(b, benchRules(200))}} {
		for _, mr := range []struct {
			name string
			mr   *MergeRequest
		}{{"monorepo", monorepoMR(10_000, false)}, {"bench", benchMR(10_000)}, {"monorepo+diffs", monorepoMR(10_000, true)}} {
			b.Run(pol.name+"/"+mr.name+"/compiled", func(b *testing.B) {
				b.ReportAllocs()
				defer reportCPU(b)()
				for b.Loop() {
					pol.p.Evaluate(mr.mr)
				}
			})
			if mr.name == "monorepo+diffs" {
				continue // the naive loop looks at paths only
			}
			b.Run(pol.name+"/"+mr.name+"/naive", func(b *testing.B) {
				defer reportCPU(b)()
				patterns := pol.p.paths.patterns
				for b.Loop() {
					hits := 0
					for _, c := range mr.mr.Changes {
						for _, r := range patterns {
							if ok, _ := doublestar.Match(r, c.NewPath); ok {
								hits++
							} else if c.OldPath != c.NewPath {
								if ok, _ := doublestar.Match(r, c.OldPath); ok {
									hits++
								}
							}
						}
					}
					_ = hits
				}
			})
		}
	}
}

// BenchmarkClassifyFirst is the first classification after a policy is
// loaded, when no evaluation has built the tables of the automaton yet.
func BenchmarkClassifyFirst(b *testing.B) {
	mr := monorepoMR(10_000, false)
	for b.Loop() {
		b.StopTimer()
		p, err := Load(DefaultName, DefaultYAML())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		p.Evaluate(mr)
	}
}

// reportCPU adds the process's CPU time per operation (user and system,
// every thread: the GC's work included) to a benchmark's figures, which
// the machine's other load inflates far less than the wall time. Call
// its result when the loop is done.
func reportCPU(b *testing.B) func() {
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	return func() {
		var after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		ns := func(r *syscall.Rusage) int64 { return r.Utime.Nano() + r.Stime.Nano() }
		if b.N > 0 {
			b.ReportMetric(float64(ns(&after)-ns(&before))/float64(b.N), "cpu-ns/op")
		}
	}
}

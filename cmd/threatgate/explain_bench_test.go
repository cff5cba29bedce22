package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/threatgate/threatgate/policies"
)

// writeBigMR writes the JSON of an MR-changes response with n files in
// about 2,200 directories of a monorepo (as policies' BenchmarkClassify
// builds it), with a small diff for every file when diffs is set, and
// returns the file's path.
func writeBigMR(tb testing.TB, n int, diffs bool) string {
	tb.Helper()
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
	mr := policies.MergeRequest{IID: 118, Title: "Move the services to the new layout", State: "opened", TargetBranch: "main",
		SourceBranch: "layout", SHA: "0123456789abcdef0123456789abcdef01234567", Author: policies.User{Username: "dev", Name: "Dev"},
		WebURL: "https://gitlab.example.com/acme/monorepo/-/merge_requests/118"}
	mr.References.Full = "acme/monorepo!118"
	for i := range n {
		p := dirs[r.IntN(len(dirs))] + "/" + names[r.IntN(len(names))]
		if r.IntN(4) == 0 {
			p = fmt.Sprintf("%s/f%d_%s", dirs[r.IntN(len(dirs))], i, names[r.IntN(len(names))])
		}
		c := policies.Change{OldPath: p, NewPath: p}
		if diffs {
			c.Diff = fmt.Sprintf("@@ -10,2 +10,4 @@ func f() {\n \tx := 1\n+\tvalue%d := compute(%d)\n+\treturn value%d, nil\n }\n", i, i, i)
		}
		mr.Changes = append(mr.Changes, c)
	}
	data, err := json.Marshal(mr)
	if err != nil {
		tb.Fatal(err)
	}
	name := filepath.Join(tb.TempDir(), "mr.json")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return name
}

// BenchmarkPolicyExplain runs `threatgate policy explain` (text and JSON)
// with the embedded default policy on a 10,000-file MR, against reading
// the file and against reading and decoding it. Target: explain costs
// little more than read+decode.
func BenchmarkPolicyExplain(b *testing.B) {
	if _, err := policies.Default(); err != nil {
		b.Fatal(err)
	}
	for _, diffs := range []bool{false, true} {
		name := writeBigMR(b, 10_000, diffs)
		kind := "paths"
		if diffs {
			kind = "diffs"
		}
		st, err := os.Stat(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s: %d bytes", kind, st.Size())
		b.Run(kind+"/read", func(b *testing.B) {
			for b.Loop() {
				if _, err := os.ReadFile(name); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/read+decode", func(b *testing.B) {
			for b.Loop() {
				data, err := os.ReadFile(name)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := policies.ParseMergeRequest(name, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, format := range []string{"text", "json"} {
			b.Run(kind+"/explain-"+format, func(b *testing.B) {
				for b.Loop() {
					if code := run(context.Background(), []string{"policy", "explain", "--format", format, name}, nil, io.Discard, io.Discard); code != exitOK {
						b.Fatalf("exit %d", code)
					}
				}
			})
		}
	}
}

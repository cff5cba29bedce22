package policies

import (
	"slices"
	"testing"

	"github.com/bmatcuk/doublestar/v4"
)

// naiveMatch is the reference: one doublestar.Match per pattern.
func naiveMatch(patterns []string, path string) []int {
	var ids []int
	for id, p := range patterns {
		if ok, _ := doublestar.Match(p, path); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func checkSame(t *testing.T, patterns []string, paths []string) {
	t.Helper()
	var g globSet
	for _, p := range patterns {
		if !doublestar.ValidatePattern(p) {
			return
		}
		g.add(p)
	}
	m := g.matcher(len(paths))
	for _, path := range paths {
		got := m.match(nil, path)
		slices.Sort(got)
		want := naiveMatch(patterns, path)
		if !slices.Equal(got, want) {
			t.Errorf("patterns %q, path %q: globSet matched %v, doublestar.Match %v", patterns, path, got, want)
		}
	}
}

func TestGlobSetAgreesWithDoublestar(t *testing.T) {
	patterns := []string{
		"**/auth/**", "**/*.go", "docs/**", "src/**/session/*.go", "Dockerfile*",
		".gitlab-ci.yml", "**/{migrations,schema}/**", "infra/**/*.tf", "*.md",
		"a/*/c", "**", "a/**/b/**/c", "{src,lib}/crypto/**", "go.{mod,sum}",
		"**/package-lock.json", "x?y/*", "**/.env*", "a*b/c", "**/[ab]*.go", `weird\*name`,
	}
	paths := []string{
		"auth", "auth/x.go", "src/auth/login.go", "src/authz/login.go", "docs", "docs/a/b.md",
		"src/x/y/session/s.go", "src/session/s.go", "Dockerfile", "Dockerfile.prod", "build/Dockerfile",
		".gitlab-ci.yml", "db/migrations/001.sql", "schema/x", "infra/a/b/main.tf", "infra/main.tf",
		"README.md", "docs/README.md", "a/b/c", "a/b/d/c", "a/b", "a/b/c/x/b/c", "src/crypto/aes.go",
		"lib/crypto/x/y", "go.mod", "go.sum", "web/package-lock.json", ".env", "cfg/.env.local",
		"xay/z", "axxb/c", "pkg/b.go", "pkg/c.go", "weird*name", "", "/abs/auth/x", "a//b",
	}
	checkSame(t, patterns, paths)
}

func FuzzGlobSet(f *testing.F) {
	f.Add("**/auth/**", "src/auth/x.go", "a/{b,c}/*.go", "a/c/d.go")
	f.Add("docs/**", "docs", "**/*.md", "x/README.md")
	f.Add("{a,b/**}/c", "b/x/c", "*", "a")
	f.Fuzz(func(t *testing.T, p1, path1, p2, path2 string) {
		if len(p1)+len(p2)+len(path1)+len(path2) > 400 {
			return
		}
		checkSame(t, []string{p1, p2}, []string{path1, path2, path1 + "/" + path2})
	})
}

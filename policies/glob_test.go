package policies

import (
	"reflect"
	"slices"
	"strings"
	"sync"
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

// checkSame compiles patterns (those doublestar accepts) into one globSet
// and checks that it matches every path exactly as doublestar.Match does,
// in two matchers: one fresh, one whose tables were built by the first.
func checkSame(t *testing.T, patterns []string, paths []string) {
	t.Helper()
	var g globSet
	ids := make([]int, len(patterns)) // a pattern given twice has one id
	for i, p := range patterns {
		if !doublestar.ValidatePattern(p) {
			return
		}
		ids[i] = g.add(p)
	}
	for range 2 {
		m := g.matcher(len(paths))
		for _, path := range paths {
			matched := m.match(nil, path)
			var got []int
			for i, id := range ids {
				if slices.Contains(matched, id) {
					got = append(got, i)
				}
			}
			want := naiveMatch(patterns, path)
			if !slices.Equal(got, want) {
				t.Fatalf("patterns %q, path %q: globSet matched %v, doublestar.Match %v", patterns, path, got, want)
			}
		}
	}
}

var globTestPaths = []string{
	"auth", "auth/x.go", "src/auth/login.go", "src/authz/login.go", "docs", "docs/a/b.md",
	"src/x/y/session/s.go", "src/session/s.go", "Dockerfile", "Dockerfile.prod", "build/Dockerfile",
	".gitlab-ci.yml", "db/migrations/001.sql", "schema/x", "infra/a/b/main.tf", "infra/main.tf",
	"README.md", "docs/README.md", "a/b/c", "a/b/d/c", "a/b", "a/b/c/x/b/c", "src/crypto/aes.go",
	"lib/crypto/x/y", "go.mod", "go.sum", "web/package-lock.json", ".env", "cfg/.env.local",
	"xay/z", "axxb/c", "pkg/b.go", "pkg/c.go", "weird*name", "", "/abs/auth/x", "a//b",
	"a", "b", "c", "a/", "a/b/", "/a", "ab", "a,b", "{a,b}", "a{", "a}", ".a", "a/.b", ".a/.b",
	"A", "AUTH/x", "Auth/x.go", "x.GO", "a/c", "b/c", "a/b/c/d", "d", "a.b", "a.", ".", "..", "a/..",
	"é/ü.go", "日本/語", "a b/c d", "a\\b", "a/\\", "*", "?", "[a]",
}

func TestGlobSetAgreesWithDoublestar(t *testing.T) {
	patterns := []string{
		"**/auth/**", "**/*.go", "docs/**", "src/**/session/*.go", "Dockerfile*",
		".gitlab-ci.yml", "**/{migrations,schema}/**", "infra/**/*.tf", "*.md",
		"a/*/c", "**", "a/**/b/**/c", "{src,lib}/crypto/**", "go.{mod,sum}",
		"**/package-lock.json", "x?y/*", "**/.env*", "a*b/c", "**/[ab]*.go", `weird\*name`,
	}
	checkSame(t, patterns, globTestPaths)
}

// TestGlobSetEdgeCases holds each pattern against doublestar.Match on many
// paths, and says which patterns are compiled into the automaton (the rest
// fall back to doublestar.Match, which is right by definition).
func TestGlobSetEdgeCases(t *testing.T) {
	for _, tt := range []struct {
		pattern  string
		compiled bool
	}{
		// brace alternatives
		{"{a,b}", true},
		{"{a,b}/c", true},
		{"x/{a,b/**}/c", true},
		{"**/{auth,session}/**", true},
		{"**/*.{go,py,ts}", true},
		{"**/{k8s,deploy}/**/*.{yml,yaml}", true},
		{"{**/a,b/**}", true},
		{"{a/**,b}/c", true},
		{"a/{**/b,c}", true},
		// nested braces
		{"{a,{b,c}}", true},
		{"{a,b{c,d}}/x", true},
		{"{{a,b},{c,d}}/{e,{f,g}/**}", true},
		{"**/{{a,b}x,c}.go", true},
		// empty alternatives and empty braces
		{"a{,b}", true},
		{"a{,.go}", true},
		{"a/{,b/}c", true},
		{"a{}", true},
		{"{}a", true},
		{"{,}", false},    // "" is not a pattern the automaton keeps
		{"a/{,b}", false}, // "a/": an empty last segment
		{"a/{b,}/c", false},
		// a '*' before a brace: doublestar looks at the brace
		{"a*{b,c}", true},
		{"a*{,b}", false},   // "a*" ends with the star
		{"a*{*,b}", false},  // "a**"
		{"**{/a,b}", false}, // "**/a" read as "*" then "/a"
		{"a/**{,/b}", false},
		{"*{.go,.py}", true},
		// the end of a name: "a/{**,x}" would match "a" if written "a/**"
		{"a/{**,x}", false},
		{"a{/**,x}", true},
		{"{a/**,b}", true},
		{"a/{**/x,y}", true},
		// escapes and classes fall back
		{`a\{b,c\}`, false},
		{`\*.go`, false},
		{"**/[ab].go", false},
		{"{[ab],c}", false},
		// dot files, trailing slashes, case
		{"**/.*", true},
		{".*/**", true}, // compiled, but "x*/**" asks doublestar about "x" itself
		{"**/.env{,.*}", true},
		{"a/", false},
		{"a/**/", false},
		{"/a", false},
		{"AUTH/**", true},
		{"**/*.GO", true},
		// "**" inside a segment or after another
		{"a**", false},
		{"**/**", false},
		{"a/**b", false},
		// '?' and several stars in a segment
		{"?/{a?,b*c*}", true},
		{"{é,ü}/*.go", true},
	} {
		t.Run(tt.pattern, func(t *testing.T) {
			if !doublestar.ValidatePattern(tt.pattern) {
				t.Fatalf("%q is not a valid pattern", tt.pattern)
			}
			if _, ok := compilable(tt.pattern); ok != tt.compiled {
				t.Errorf("compiled = %v, want %v", ok, tt.compiled)
			}
			paths := slices.Clone(globTestPaths)
			// The pattern's own alternatives, and their prefixes, are the
			// paths most likely to tell the two apart.
			if alts, ok := alternatives(tt.pattern, maxAlternatives); ok {
				for _, a := range alts {
					a = strings.ReplaceAll(strings.ReplaceAll(a, "**", "x/y"), "*", "z")
					a = strings.ReplaceAll(a, "?", "q")
					for i := range len(a) + 1 {
						paths = append(paths, a[:i])
					}
				}
			}
			checkSame(t, []string{tt.pattern}, paths)
		})
	}
}

// TestDefaultPolicyPathsCompiled: every path rule of the embedded default
// policy runs in the automaton; none falls back to doublestar.Match.
func TestDefaultPolicyPathsCompiled(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range p.paths.fallback {
		t.Errorf("default policy path %q falls back to doublestar.Match", p.paths.patterns[id])
	}
}

// TestGlobSetManyBraces: a pattern with more alternatives or braces than
// the automaton takes falls back, and still matches as doublestar does.
func TestGlobSetManyBraces(t *testing.T) {
	big := strings.Repeat("{a,b}", 11) // 2048 alternatives
	deep := strings.Repeat("{a,", maxBraces+1) + "b" + strings.Repeat("}", maxBraces+1)
	for _, p := range []string{big, deep} {
		if _, ok := compilable(p); ok {
			t.Errorf("%.30q... compiled", p)
		}
	}
	checkSame(t, []string{big, deep}, []string{strings.Repeat("a", 11), strings.Repeat("ab", 5) + "b", "a", "b", "ab"})
}

func FuzzGlobSet(f *testing.F) {
	f.Add("**/auth/**", "src/auth/x.go", "a/{b,c}/*.go", "a/c/d.go")
	f.Add("docs/**", "docs", "**/*.md", "x/README.md")
	f.Add("{a,b/**}/c", "b/x/c", "*", "a")
	f.Add("{a,{b,c}x}/**/*.{go,py}", "cx/d/e.py", "a*{b,c}", "axc")
	f.Add("a/{**,x}", "a", "a{,.go}", "a.go")
	f.Add("**{/a,b}", "x/a", "{}a/{,b/}c", "a/b/c")
	f.Fuzz(func(t *testing.T, p1, path1, p2, path2 string) {
		if len(p1)+len(p2)+len(path1)+len(path2) > 400 {
			return
		}
		checkSame(t, []string{p1, p2}, []string{path1, path2, path1 + "/" + path2})
	})
}

// globTokens are what FuzzGlobTokens builds patterns and paths from, so
// that braces, stars and separators meet far more often than in random
// strings.
var globTokens = []string{"a", "b", "c", ".", "/", "*", "**", "?", "{", ",", "}", "/**/", "x.go", "A", "é", "-"}

func tokens(data []byte) string {
	var b strings.Builder
	for _, c := range data {
		b.WriteString(globTokens[int(c)%len(globTokens)])
	}
	return b.String()
}

// FuzzGlobTokens: patterns made of glob tokens match exactly as
// doublestar.Match says, on paths made of the same tokens (with the
// pattern's own characters) and on the pattern's alternatives.
func FuzzGlobTokens(f *testing.F) {
	f.Add([]byte{8, 0, 9, 1, 10, 4, 6}, []byte{0, 4, 2})
	f.Add([]byte{6, 4, 8, 0, 9, 8, 1, 9, 2, 10, 10, 4, 5}, []byte{1, 2, 4, 12})
	f.Add([]byte{0, 4, 8, 6, 9, 2, 10}, []byte{0})
	f.Add([]byte{5, 8, 9, 0, 10}, []byte{0, 0})
	f.Add([]byte{8, 8, 0, 9, 1, 10, 9, 2, 10, 11, 12}, []byte{1, 4, 2, 4, 12})
	f.Fuzz(func(t *testing.T, pat, path []byte) {
		if len(pat) > 40 || len(path) > 40 {
			return
		}
		p := tokens(pat)
		if !doublestar.ValidatePattern(p) {
			return
		}
		paths := []string{tokens(path), strings.NewReplacer("*", "", "?", "a", "{", "", "}", "", ",", "").Replace(p)}
		if alts, ok := alternatives(p, 64); ok {
			for _, a := range alts {
				paths = append(paths, strings.ReplaceAll(strings.ReplaceAll(a, "*", ""), "?", "a"), strings.ReplaceAll(a, "*", "b/c"))
			}
		}
		checkSame(t, []string{p}, paths)
	})
}

// TestGlobSetSharedAcrossEvaluations: evaluations running at once share
// the automaton (the race detector watches its lock) and each finds what
// an evaluation of a freshly loaded policy finds.
func TestGlobSetSharedAcrossEvaluations(t *testing.T) {
	mr := monorepoMR(3000, true)
	fresh, err := Load(DefaultName, DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	want := fresh.Evaluate(mr)
	shared, err := Load(DefaultName, DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]Result, 4)
	for i := range results {
		wg.Go(func() { results[i] = shared.Evaluate(mr) })
	}
	wg.Wait()
	for i, got := range append(results, shared.Evaluate(mr)) {
		if got.Score != want.Score || !reflect.DeepEqual(got.Signals, want.Signals) || got.Tier.ID != want.Tier.ID {
			t.Errorf("evaluation %d: score %d, signals %v; want score %d, signals %v", i, got.Score, got.Signals, want.Score, want.Signals)
		}
	}
}

package policies

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDefaultPolicy loads the embedded default and runs its own cases
// (default_test.yaml) against it.
func TestDefaultPolicy(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatalf("Default() = %v", err)
	}
	if p.Source != DefaultName {
		t.Errorf("Source = %q, want %q", p.Source, DefaultName)
	}
	// mr_file paths are relative to the case file, which sits in this
	// package's directory, where go test runs.
	cases, err := LoadCases("default_test.yaml", DefaultCases())
	if err != nil {
		t.Fatalf("LoadCases(default_test.yaml) = %v", err)
	}
	if len(cases) < 12 {
		t.Errorf("default_test.yaml has %d cases, want at least 12", len(cases))
	}
	for _, f := range p.Check("default_test.yaml", cases) {
		t.Errorf("%s\n\tsignals: %s", f, firedSummary(f.Got))
	}
}

func firedSummary(r Result) string {
	var b strings.Builder
	for _, f := range r.Signals {
		b.WriteString("\n\t  " + f.ID + ": " + strings.Join(f.Evidence, "; "))
	}
	return b.String()
}

func TestLoadCasesProblems(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mr"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mr", "broken.json"), []byte("{\n  \"changes\": [}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "cases.yaml")
	for _, tt := range []struct {
		name string
		src  string
		want []string // Problem.Error() without the file name, in order
	}{
		{"empty", "", []string{"1:1: empty; want a mapping with cases"}},
		{"not YAML", "cases: [\n", []string{"1:1: not valid YAML: did not find expected node content"}},
		{"unknown top-level key", "tests: []\n", []string{`1:1: unknown key "tests"; want one of cases`, "1:1: cases: missing; want a list of cases"}},
		{"no cases key", "{}\n", []string{"1:1: cases: missing; want a list of cases"}},
		{"unknown case key", "cases:\n  - {name: a, mr: {changes: []}, tier: none, expect: T1}\n",
			[]string{`2:46: cases[0]: unknown key "expect"; want one of name, mr, mr_file, tier, signals`}},
		{"no MR", "cases:\n  - {name: a, tier: none}\n",
			[]string{"2:5: cases[0]: want mr (an inline MR-changes object) or mr_file"}},
		{"nothing to check", "cases:\n  - {name: a, mr: {changes: []}}\n",
			[]string{"2:5: cases[0]: want tier and/or signals to check"}},
		{"missing mr_file", "cases:\n  - {mr_file: mr/nope.json, tier: none}\n",
			[]string{"2:15: cases[0].mr_file: cannot read " + filepath.Join(dir, "mr", "nope.json") + ": no such file or directory"}},
		{"broken mr_file", "cases:\n  - {mr_file: mr/broken.json, tier: none}\n",
			[]string{"2:15: cases[0].mr_file: " + filepath.Join(dir, "mr", "broken.json") + ":2:15: not valid JSON: invalid character '}' looking for beginning of value"}},
		// An inline MR has no JSON lines of its own: the problem points at mr.
		{"inline MR of the wrong shape", "cases:\n  - name: a\n    mr: {title: [x], changes: []}\n    tier: none\n",
			[]string{"3:9: cases[0].mr.title: want a string, got a JSON array"}},
		{"inline MR without changes", "cases:\n  - name: a\n    mr: {title: x}\n    tier: none\n",
			[]string{"3:9: cases[0].mr.changes: missing; want the JSON of GET /projects/:id/merge_requests/:iid/changes (the MR object with its changes array)"}},
		{"signals not a list", "cases:\n  - {mr: {changes: []}, signals: {a: 1}}\n",
			[]string{"2:34: cases[0].signals: want a list of strings, got a mapping"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCases(file, []byte(tt.src))
			var got []string
			for _, p := range Problems(err) {
				if p.File != file {
					t.Errorf("File = %q, want %q", p.File, file)
				}
				got = append(got, strings.TrimPrefix(p.Error(), file+":"))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLoadCasesAndCheck(t *testing.T) {
	p := tierPolicy(t, `  - {id: auth, category: c, weight: 50, when: {paths: ["auth/**"]}}
  - {id: docs, category: c, weight: 1, when: {paths: ["**/*.md"]}}
`, `  - {id: T2, when: {min_score: 50}, approvals: [{group: g}]}
`)
	dir := t.TempDir()
	mrJSON := `{"title": "x", "target_branch": "main", "changes": [{"old_path": "auth/a.go", "new_path": "auth/a.go", "diff": ""}]}`
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), []byte(mrJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `cases:
  - name: from a file
    mr_file: auth.json
    tier: T2
    signals: [auth]
  - name: wrong tier
    mr: {changes: [{old_path: auth/a.go, new_path: auth/a.go}]}
    tier: none
  - name: missing and extra signals
    mr: {changes: [{old_path: auth/a.go, new_path: auth/a.go}, {old_path: README.md, new_path: README.md}]}
    signals: [auth, docs2]
  - name: fires nothing
    mr: {changes: [{old_path: README.md, new_path: README.md}]}
    signals: []
  - mr: {changes: [{old_path: README.md, new_path: README.md}]}
    tier: T9
  - name: only the tier is checked
    mr: {changes: [{old_path: README.md, new_path: README.md}]}
    tier: none
`
	file := filepath.Join(dir, "cases.yaml")
	cases, err := LoadCases(file, []byte(src))
	if err != nil {
		t.Fatalf("LoadCases = %v", err)
	}
	if len(cases) != 6 {
		t.Fatalf("%d cases, want 6", len(cases))
	}
	if c := cases[4]; c.Name != "case 5" || c.Line != 15 || c.Signals != nil {
		t.Errorf("case 5 = %+v; want the name made up, line 15, signals unchecked", c)
	}
	if c := cases[3]; c.Signals == nil || len(c.Signals) != 0 {
		t.Errorf("signals: [] = %#v, want an empty, non-nil list", c.Signals)
	}
	var got []string
	for _, f := range p.Check("cases.yaml", cases) {
		got = append(got, f.String())
	}
	want := []string{
		"cases.yaml:6: wrong tier: tier = T2, want none (score 50)",
		`cases.yaml:9: missing and extra signals: signal "docs2" is not defined in the policy; signals fired that the case does not expect: docs`,
		"cases.yaml:12: fires nothing: signals fired that the case does not expect: docs",
		`cases.yaml:15: case 5: tier "T9" is not defined in the policy`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("failures:\n got %q\nwant %q", got, want)
	}
}

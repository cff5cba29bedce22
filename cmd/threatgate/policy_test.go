package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPolicyExplainJSONSaysWhatTextSays: for each sample MR, under the
// embedded policy, every fact of the text output (MR, policy, tier, score,
// signals and their evidence, artifacts, approvals and their members,
// review, inform, deadlines, checklist, controls) is in the JSON output,
// and both are their golden files in testdata/explain (go test
// ./cmd/threatgate -run TestPolicyExplain -update rewrites them).
func TestPolicyExplainJSONSaysWhatTextSays(t *testing.T) {
	samples, err := filepath.Glob("samples/*.json")
	if err != nil || len(samples) == 0 {
		t.Fatalf("no sample MRs: %v", err)
	}
	tiers := 0
	for _, sample := range samples {
		name := strings.TrimSuffix(filepath.Base(sample), ".json")
		t.Run(name, func(t *testing.T) {
			code, text, stderr := runCLI(t, "", "policy", "explain", sample)
			if code != exitOK {
				t.Fatalf("text: exit %d: %s", code, stderr)
			}
			code, js, stderr := runCLI(t, "", "policy", "explain", "--format", "json", sample)
			if code != exitOK {
				t.Fatalf("json: exit %d: %s", code, stderr)
			}
			goldenFile(t, filepath.Join("testdata", "explain", name+".txt"), text)
			goldenFile(t, filepath.Join("testdata", "explain", name+".json"), js)
			var x explanation
			if err := json.Unmarshal([]byte(js), &x); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, js)
			}
			var raw map[string]any
			json.Unmarshal([]byte(js), &raw)
			if x.Tier != nil {
				tiers++
			}
			for _, f := range textFacts(t, text) {
				if !f.in(x, raw) {
					t.Errorf("the text says %q (%s); the JSON does not:\n%s", f.line, f.what, js)
				}
			}
		})
	}
	if tiers == 0 || tiers == len(samples) {
		t.Errorf("%d of %d samples get a tier; want some with and some without", tiers, len(samples))
	}
}

// fact is one thing a line of policy explain's text output says, and how
// to find it in the JSON output.
type fact struct {
	line, what string
	in         func(x explanation, raw map[string]any) bool
}

var (
	reMR        = regexp.MustCompile(`^MR:\s+(?:(\S+)!(\d+) )?(.*)$`)
	reTier      = regexp.MustCompile(`^Tier:\s+(\S+) (.*) \(score (\d+)\)$`)
	reNoTier    = regexp.MustCompile(`^Tier:\s+none \(score (\d+)\): no escalation$`)
	reSignal    = regexp.MustCompile(`^  (\S+) \((\S+), \+(\d+)\)$`)
	reEvidence  = regexp.MustCompile(`^    - (.*)$`)
	reArtifact  = regexp.MustCompile(`^  - ([a-z0-9-]+): (.*)$`)
	reApproval  = regexp.MustCompile(`^  - (\d+) from (\S+) \((\S+)\): (.*)$`)
	reList      = regexp.MustCompile(`^(Review|Inform|Checklist|Controls): (.*)$`)
	reDeadlines = regexp.MustCompile(`^Deadlines: first response (\S+), decision (\S+) \(urgent (\S+)\)$`)
)

// textFacts reads policy explain's text output into facts; a line it
// cannot read fails the test, so that a new line in the text needs a rule
// here (and its field in the JSON).
func textFacts(t *testing.T, text string) []fact {
	t.Helper()
	var out []fact
	signal := -1 // the signal whose evidence follows
	add := func(line, what string, in func(explanation, map[string]any) bool) {
		out = append(out, fact{line, what, in})
	}
	for line := range strings.Lines(strings.TrimRight(text, "\n")) {
		line = strings.TrimRight(line, "\n")
		switch m := (func(re *regexp.Regexp) []string { return re.FindStringSubmatch(line) }); {
		case m(reMR) != nil:
			g := m(reMR)
			add(line, "the MR", func(x explanation, _ map[string]any) bool {
				return x.MR.Project == g[1] && (g[2] == "" || strconv.FormatInt(x.MR.IID, 10) == g[2]) && x.MR.Title == g[3]
			})
		case strings.HasPrefix(line, "Policy: "):
			src := strings.TrimPrefix(line, "Policy: ")
			add(line, "the policy", func(x explanation, _ map[string]any) bool { return x.Policy == src })
		case m(reNoTier) != nil:
			g := m(reNoTier)
			add(line, "no tier: tier null, no tier_name, the score", func(x explanation, raw map[string]any) bool {
				tier, has := raw["tier"]
				_, named := raw["tier_name"]
				return has && tier == nil && !named && strconv.Itoa(x.Score) == g[1] && x.Deadlines == nil
			})
		case m(reTier) != nil:
			g := m(reTier)
			add(line, "the tier and score", func(x explanation, _ map[string]any) bool {
				return x.Tier != nil && *x.Tier == g[1] && x.TierName != nil && *x.TierName == g[2] && strconv.Itoa(x.Score) == g[3]
			})
		case line == "Signals: none fired":
			add(line, "no signals", func(x explanation, _ map[string]any) bool { return len(x.Signals) == 0 })
		case line == "Signals:", line == "Artifacts:", line == "Approvals:":
		case m(reSignal) != nil:
			g := m(reSignal)
			signal++
			i := signal
			add(line, "a signal", func(x explanation, _ map[string]any) bool {
				return i < len(x.Signals) && x.Signals[i].ID == g[1] && x.Signals[i].Category == g[2] && strconv.Itoa(x.Signals[i].Weight) == g[3]
			})
		case m(reEvidence) != nil && signal >= 0 && !strings.Contains(line, " from ") && !reArtifact.MatchString(line):
			g, i := m(reEvidence), signal
			add(line, "a signal's evidence", func(x explanation, _ map[string]any) bool {
				return i < len(x.Signals) && slices.ContainsFunc(x.Signals[i].Evidence, func(ev string) bool { return ev == g[1] })
			})
		case m(reApproval) != nil:
			g := m(reApproval)
			add(line, "an approvals row and its members", func(x explanation, _ map[string]any) bool {
				return slices.ContainsFunc(x.Approvals, func(a explainedApproval) bool {
					return strconv.Itoa(a.Count) == g[1] && a.Group == g[2] && a.Role == g[3] && strings.Join(a.Members, ", ") == g[4]
				})
			})
		case m(reArtifact) != nil:
			g := m(reArtifact)
			add(line, "an artifact and its name", func(x explanation, _ map[string]any) bool {
				return slices.Contains(x.Artifacts, g[1]) && x.ArtifactNames[g[1]] == g[2]
			})
		case m(reList) != nil:
			g := m(reList)
			add(line, strings.ToLower(g[1]), func(x explanation, _ map[string]any) bool {
				got := map[string][]string{"Review": x.Review, "Inform": x.Inform, "Checklist": x.Checklist, "Controls": x.Controls}[g[1]]
				return strings.Join(got, ", ") == g[2]
			})
		case m(reDeadlines) != nil:
			g := m(reDeadlines)
			add(line, "the deadlines", func(x explanation, _ map[string]any) bool {
				d := x.Deadlines
				return d != nil && d.FirstResponse == g[1] && d.Decision == g[2] && d.UrgentDecision == g[3]
			})
		default:
			t.Errorf("a line of the text output this test cannot read (add a rule for it): %q", line)
		}
	}
	return out
}

// goldenFile compares got with the file at path, or rewrites it with
// -update.
func goldenFile(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/threatgate -run TestPolicyExplain -update writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./cmd/threatgate -run TestPolicyExplain -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestPolicyTestUnusableCaseFiles: a case file that cannot be read, is
// missing, empty, holds only comments or no cases, or has a malformed case
// is an error naming the file (and the line), exit 1, and no "0 cases, 0
// failed" summary that would read as a pass.
func TestPolicyTestUnusableCaseFiles(t *testing.T) {
	pol := writeFile(t, "p.yaml", smallPolicy)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "auth.json"), []byte(authMR), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("cases:\n  - name: auth change is T2\n    mr_file: auth.json\n    tier: T2\n"), 0o600)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, file string
		stderr     []string // all in stderr
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), []string{"nope.yaml: cannot read the test cases: no such file or directory"}},
		{"a directory", dir, []string{dir + ": cannot read the test cases: is a directory"}},
		{"empty", write("empty.yaml", ""), []string{"empty.yaml:1:1: empty; want a mapping with cases"}},
		{"only comments", write("comments.yaml", "# cases to come\n# more\n"), []string{"comments.yaml:", "want a mapping with cases"}},
		{"no cases", write("none.yaml", "cases: []\n"), []string{"none.yaml: no test cases; want a mapping with a non-empty list under cases"}},
		{"malformed case", write("bad.yaml", "cases:\n  - name: typo\n    mr_file: auth.json\n    teir: T2\n"), []string{"bad.yaml:4:5:", "teir"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, "", "policy", "test", "--policy", pol, tt.file)
			if code != exitFinding {
				t.Errorf("exit %d, want %d", code, exitFinding)
			}
			for _, w := range append(tt.stderr, "policy test: no test case ran") {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(out, "cases,") {
				t.Errorf("a summary although no case ran:\n%s", out)
			}
			// With a good file beside it: the good one runs, the summary
			// says a file did not, and the exit is still 1.
			code, out, _ = runCLI(t, "", "policy", "test", "--policy", pol, good, tt.file)
			if code != exitFinding || !strings.Contains(out, "1 cases, 0 failed; 1 file not run (see above)") {
				t.Errorf("with a good file: exit %d, stdout:\n%s", code, out)
			}
		})
	}
	if os.Geteuid() != 0 { // root reads whatever the mode says
		unreadable := write("locked.yaml", "cases: []\n")
		os.Chmod(unreadable, 0)
		code, _, stderr := runCLI(t, "", "policy", "test", "--policy", pol, unreadable)
		if code != exitFinding || !strings.Contains(stderr, "locked.yaml: cannot read the test cases: permission denied") {
			t.Errorf("unreadable: exit %d, stderr %q", code, stderr)
		}
	}
}

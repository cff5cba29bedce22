package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the command line and returns its exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const authMR = `{
  "iid": 12, "title": "Rework session handling", "description": "", "target_branch": "main",
  "author": {"username": "ann"}, "labels": [], "references": {"full": "shop/api!12"},
  "changes": [
    {"old_path": "internal/auth/session.go", "new_path": "internal/auth/session.go", "diff": "@@ -1,2 +1,3 @@\n package auth\n+// rotate tokens\n", "new_file": false, "renamed_file": false, "deleted_file": false}
  ]
}`

const docsMR = `{"iid": 3, "title": "Fix typo", "description": "", "target_branch": "main", "author": {"username": "ann"}, "labels": [],
  "changes": [{"old_path": "README.md", "new_path": "README.md", "diff": "@@ -1 +1 @@\n-teh\n+the\n", "new_file": false, "renamed_file": false, "deleted_file": false}]}`

const smallPolicy = `version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: alice, email: alice@example.com}
`

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"policy"},
		{"policy", "frob"},
		{"policy", "lint"},
		{"policy", "test"},
		{"policy", "explain", "--format", "xml", "x.json"},
		{"policy", "explain", "--nope"},
		{"policy", "explain", "a.json", "b.json"},
	} {
		code, _, stderr := runCLI(t, "", args...)
		if code != exitUsage {
			t.Errorf("threatgate %q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, "threatgate") {
			t.Errorf("threatgate %q: stderr %q has no hint", args, stderr)
		}
	}
}

// regexpEmail matches the e-mail keys of inline people entries.
var regexpEmail = regexp.MustCompile(`, emails?: [^,}]+`)

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "threatgate ") {
		t.Errorf("version: exit %d, output %q", code, out)
	}
}

func TestPolicyLint(t *testing.T) {
	good := writeFile(t, "good.yaml", smallPolicy)
	code, out, _ := runCLI(t, "", "policy", "lint", good)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("lint good: exit %d, out %q", code, out)
	}
	bad := writeFile(t, "bad.yaml", strings.Replace(strings.Replace(smallPolicy, "min_score: 50", "min_score: 50, colour: red", 1), `"**/auth/**"`, `"**/auth/[**"`, 1))
	code, _, stderr := runCLI(t, "", "policy", "lint", good, bad)
	if code != exitFinding {
		t.Fatalf("lint bad: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 problems, one per line, got %q", stderr)
	}
	if !strings.HasPrefix(lines[0], bad+":3:") || !strings.Contains(lines[0], "bad glob") {
		t.Errorf("first problem %q, want %s:3:col: ... bad glob", lines[0], bad)
	}
	if !strings.HasPrefix(lines[1], bad+":7:") || !strings.Contains(lines[1], `unknown key "colour"`) {
		t.Errorf("second problem %q, want %s:7:col: unknown key", lines[1], bad)
	}
	code, _, stderr = runCLI(t, "", "policy", "lint", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitFinding || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("lint missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestPolicyLintApproverWithoutEmail: an approver threatgate could not
// tell from the authors of a change fails the lint, at the person's line,
// and serve does not start with such a policy.
func TestPolicyLintApproverWithoutEmail(t *testing.T) {
	bad := writeFile(t, "noemail.yaml", regexpEmail.ReplaceAllString(smallPolicy, ""))
	code, _, stderr := runCLI(t, "", "policy", "lint", bad)
	if code != exitFinding || !strings.Contains(stderr, "has no e-mail address") || !strings.Contains(stderr, bad+":") || !strings.Contains(stderr, ".emails:") {
		t.Fatalf("lint: exit %d, stderr %q; want 1 and the person's line", code, stderr)
	}
	cfg := writeFile(t, "tg.yaml", "listen: 127.0.0.1:0\ndata_dir: "+t.TempDir()+"\npolicy: "+bad+"\n")
	code, _, stderr = runCLI(t, "", "serve", "--config", cfg)
	if code != exitFinding || !strings.Contains(stderr, "has no e-mail address") {
		t.Errorf("serve: exit %d, stderr %q; want it to refuse the policy", code, stderr)
	}
}

func TestPolicyExplainJSON(t *testing.T) {
	pol := writeFile(t, "p.yaml", smallPolicy)
	mr := writeFile(t, "mr.json", authMR)
	code, out, stderr := runCLI(t, "", "policy", "explain", "--policy", pol, "--format", "json", mr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Tier     *string `json:"tier"`
		TierName string  `json:"tier_name"`
		Score    int     `json:"score"`
		Signals  []struct {
			ID       string   `json:"id"`
			Category string   `json:"category"`
			Weight   int      `json:"weight"`
			Evidence []string `json:"evidence"`
		} `json:"signals"`
		Artifacts []string `json:"artifacts"`
		Approvals []struct {
			Group string `json:"group"`
			Count int    `json:"count"`
			Role  string `json:"role"`
		} `json:"approvals"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Tier == nil || *got.Tier != "T2" || got.TierName != "high" || got.Score != 50 {
		t.Errorf("tier %v %q score %d, want T2 high 50", got.Tier, got.TierName, got.Score)
	}
	if len(got.Signals) != 1 || got.Signals[0].ID != "auth" || got.Signals[0].Category != "access-control" ||
		len(got.Signals[0].Evidence) == 0 || !strings.Contains(got.Signals[0].Evidence[0], "internal/auth/session.go") {
		t.Errorf("signals = %+v", got.Signals)
	}
	if len(got.Artifacts) != 1 || got.Artifacts[0] != "threat-model" {
		t.Errorf("artifacts = %v", got.Artifacts)
	}
	if len(got.Approvals) != 1 || got.Approvals[0].Group != "appsec" || got.Approvals[0].Count != 1 || got.Approvals[0].Role != "approver" {
		t.Errorf("approvals = %+v", got.Approvals)
	}
}

func TestPolicyExplainNoTierIsNull(t *testing.T) {
	pol := writeFile(t, "p.yaml", smallPolicy)
	code, out, _ := runCLI(t, docsMR, "policy", "explain", "--format", "json", "--policy", pol, "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, `"tier": null`) || !strings.Contains(out, `"signals": []`) {
		t.Errorf("want tier null and no signals, got %s", out)
	}
	// Flags after the file work too, and text is the default format.
	mr := writeFile(t, "mr.json", authMR)
	code, out, _ = runCLI(t, "", "policy", "explain", mr, "--policy", pol)
	if code != 0 || !strings.Contains(out, "T2 high (score 50)") || !strings.Contains(out, "internal/auth/session.go") {
		t.Errorf("text explain: exit %d\n%s", code, out)
	}
}

func TestPolicyExplainBadInput(t *testing.T) {
	for name, body := range map[string]string{
		"syntax":     "{\n  \"iid\": 1,\n  \"changes\": [,]\n}",
		"type":       `{"iid": "twelve", "changes": []}`,
		"no changes": `{"iid": 1}`,
		"empty":      ``,
	} {
		t.Run(name, func(t *testing.T) {
			mr := writeFile(t, "mr.json", body)
			pol := writeFile(t, "p.yaml", smallPolicy)
			code, out, stderr := runCLI(t, "", "policy", "explain", "--policy", pol, mr)
			if code != exitFinding {
				t.Errorf("exit %d, want 1 (stdout %q)", code, out)
			}
			if !strings.Contains(stderr, "mr.json") {
				t.Errorf("stderr %q does not name the file", stderr)
			}
		})
	}
}

func TestPolicyTest(t *testing.T) {
	pol := writeFile(t, "p.yaml", smallPolicy)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), []byte(authMR), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := filepath.Join(dir, "cases.yaml")
	os.WriteFile(cases, []byte(`cases:
  - name: auth change is T2
    mr_file: auth.json
    tier: T2
    signals: [auth]
  - name: wrong on purpose
    mr_file: auth.json
    tier: none
`), 0o600)
	code, out, _ := runCLI(t, "", "policy", "test", "--policy", pol, cases)
	if code != exitFinding {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "wrong on purpose") || !strings.Contains(out, "tier = T2, want none") || strings.Contains(out, "auth change is T2:") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(out, "2 cases, 1 failed") {
		t.Errorf("no summary in:\n%s", out)
	}
}

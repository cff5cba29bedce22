package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
)

const retroPolicy = `
version: 1
signals:
  - {id: crypto, category: cryptography, weight: 100, when: {paths: ["**/crypto/**"]}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    decision: 48h
groups:
  appsec: {members: [alice, bob]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
`

// runRetro runs threatgate retro and returns its exit code and output.
func runRetro(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code := e.retro(args)
	return code, out.String(), errb.String()
}

// TestRetroJSON: two crypto escalations whose deadline passed awaiting the
// threat model, one rejected late, and an incident on an MR never
// escalated, read from the stopped store as JSON.
func TestRetroJSON(t *testing.T) {
	r := &exportRig{Rig: testrig.NewRig(t, retroPolicy), t: t}
	r.mr(1, bot.MROpen, "c001", "lib/crypto/cipher.go")
	r.mr(2, bot.MROpen, "c002", "lib/crypto/kdf.go")
	r.at(96 * time.Hour)
	r.do("bob", "ESC-2", "/threatgate reject ESC-2 not constant time")
	r.do("ann", "", "/threatgate incident shop/api!9 open redirect")

	r.closed(func() {
		code, stdout, stderr := runRetro(t, "--quarter", "2026Q4", "--format", "json", "--data", r.Dir)
		if code != exitOK {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		var got bot.Retro
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if got.Year != 2026 || got.Quarter != 4 || len(got.Breaches) != 2 {
			t.Errorf("retro = %+v, want 2026Q4 with 2 breaches", got)
		}
		if got.Stalled[bot.StateAwaitingArtifacts] != 2 {
			t.Errorf("Stalled = %v, want 2 awaiting artifacts", got.Stalled)
		}
		var kinds []string
		for _, s := range got.Suggestions {
			kinds = append(kinds, s.Kind+" "+s.Subject)
		}
		if !strings.Contains(strings.Join(kinds, "|"), "missing_signal shop/api!9") {
			t.Errorf("Suggestions = %q, want a missing signal on shop/api!9", kinds)
		}
		if !strings.Contains(stdout, `"missing_artifacts": [`) || !strings.Contains(stdout, `"kind": "threat-model"`) {
			t.Errorf("stdout lacks the missing threat model:\n%s", stdout)
		}

		code, stdout, stderr = runRetro(t, "--quarter", "2026Q4", "--data", r.Dir)
		if code != exitOK || !strings.Contains(stdout, "Quarterly security review retrospective, 2026Q4") {
			t.Errorf("text: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

func TestRetroFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"nothing", nil, exitUsage, []string{`--quarter: want a quarter such as "2026Q4"`}},
		{"malformed", []string{"--quarter", "Q4-2026"}, exitUsage, []string{`--quarter: want a quarter such as "2026Q4", got "Q4-2026"`}},
		{"no such quarter", []string{"--quarter", "2026Q7"}, exitUsage, []string{"--quarter: a year has quarters 1 to 4, not 7"}},
		{"not begun", []string{"--quarter", "2999Q1"}, exitUsage, []string{"--quarter: 2999Q1 has not begun yet"}},
		{"format", []string{"--quarter", "2026Q4", "--format", "pdf"}, exitUsage, []string{`--format: want text or json, got "pdf"`}},
		{"argument", []string{"--quarter", "2026Q4", "extra"}, exitUsage, []string{`takes no arguments, got "extra"`}},
		{"no store", []string{"--quarter", "2026Q4", "--data", t.TempDir()}, exitFinding, []string{"--data: no threatgate store in"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runRetro(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServeReportsEveryConfigProblemAtOnce: a type error, an unknown key,
// a value Validate refuses and a missing secret come out of one run of
// serve, in line order, each with line:col, the key and what was wanted;
// and docs/CONFIG.md shows exactly that output for exactly that file
// (go test ./cmd/threatgate -run ServeReportsEvery -update rewrites it).
func TestServeReportsEveryConfigProblemAtOnce(t *testing.T) {
	src, err := os.ReadFile("testdata/config/problems.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docPath, err := filepath.Abs("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "threatgate.yaml"), src, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // the file is named as the user named it
	t.Setenv("THREATGATE_GITLAB_TOKEN", "glpat-must-not-show")
	t.Setenv("THREATGATE_GITLAB_WEBHOOK_SECRET", "whs-must-not-show")
	t.Setenv("THREATGATE_DASHBOARD_TOKEN", "")

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--config", "threatgate.yaml"}, nil, &stdout, &stderr); code != exitFinding {
		t.Fatalf("serve = %d, want %d; stderr:\n%s", code, exitFinding, stderr.String())
	}
	got := stderr.String()
	want := []string{
		`threatgate.yaml:1:9: listen: want a string, got a list`,
		`threatgate.yaml:5:20: gitlab.reconcile_every: want a duration such as "90s", "10m" or "1h", got "soon"`,
		`threatgate.yaml:6:3: gitlab: unknown key "project"; want one of url, mode, token_env,`,
		`threatgate.yaml:8:9: gitlab.gate: want "status" or "external_status_check", got "required"`,
		`threatgate.yaml:10:24: web.dashboard_token_env: the environment variable THREATGATE_DASHBOARD_TOKEN is not set or is empty`,
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("serve printed %d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q\nwant it to start %q", i+1, lines[i], want[i])
		}
	}
	if strings.Contains(got, "must-not-show") {
		t.Errorf("the report shows a secret:\n%s", got)
	}

	// docs/CONFIG.md: the file, then what serve prints for it.
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)(## Problems\n.*?```yaml\n)(.*?)(```\n.*?```\n)(.*?)(```\n)")
	m := re.FindSubmatchIndex(doc)
	if m == nil {
		t.Fatal("docs/CONFIG.md: no ## Problems section with a yaml block and an output block")
	}
	docFile, docOut := string(doc[m[4]:m[5]]), string(doc[m[8]:m[9]])
	if docFile == string(src) && docOut == got {
		return
	}
	if *update {
		var b bytes.Buffer
		b.Write(doc[:m[4]])
		b.Write(src)
		b.Write(doc[m[5]:m[8]])
		b.WriteString(got)
		b.Write(doc[m[9]:])
		if err := os.WriteFile(docPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/CONFIG.md's Problems example is not what serve prints (run with -update to rewrite it):\nfile in the doc:\n%s\nwant:\n%s\noutput in the doc:\n%s\nwant:\n%s", docFile, src, docOut, got)
}

// TestLoadCheckedGathersEveryProblem: decoding, Validate and the secrets
// report together; a key whose value could not be decoded is reported
// once, by the decoder, not again by Validate.
func TestLoadCheckedGathersEveryProblem(t *testing.T) {
	path := writeConfig(t, "gitlab:\n  timeout: [1]\n  gate: required\n  colour: red\n  mode: trial\nslack:\n  team_id: [T1]\n  channel: C0ESC\n")
	_, _, _, err := loadChecked(path, envOf(map[string]string{"THREATGATE_GITLAB_WEBHOOK_SECRET": "x"}))
	got := problemTexts(t, err)
	want := []string{
		"2:12: gitlab.timeout: want a duration",
		`3:9: gitlab.gate: want "status" or "external_status_check", got "required"`,
		`4:3: gitlab: unknown key "colour"`,
		`5:9: gitlab.mode: want "enforce" or "dry_run", got "trial"`,
		"6:1: slack.bot_token_env: the environment variable THREATGATE_SLACK_BOT_TOKEN is not set",
		"6:1: slack.signing_secret_env: the environment variable THREATGATE_SLACK_SIGNING_SECRET is not set",
		"7:12: slack.team_id: want a string, got a list",
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q\nwant it to start %q", i, got[i], want[i])
		}
	}
}

func TestConfigGitLabMode(t *testing.T) {
	c := mustLoad(t, "gitlab:\n  url: https://gitlab.example.com\n  mode: dry_run\n")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	if !c.GitLab.DryRun() || c.GitLab.Mode != ModeDryRun {
		t.Errorf("mode dry_run: DryRun() = %v, Mode = %q", c.GitLab.DryRun(), c.GitLab.Mode)
	}
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "gitlab.mode is dry_run") {
		t.Errorf("Warnings = %q, want the dry run named", w)
	}
	if c := mustLoad(t, "gitlab:\n  url: https://gitlab.example.com\n"); c.GitLab.DryRun() || c.GitLab.Mode != ModeEnforce {
		t.Errorf("default mode: DryRun() = %v, Mode = %q, want enforce", c.GitLab.DryRun(), c.GitLab.Mode)
	}
	if c := mustLoad(t, "gitlab:\n"); !c.GitLab.DryRun() {
		t.Errorf("no url: DryRun() = false, want true (nothing can be written without a URL)")
	}
	c = mustLoad(t, "gitlab:\n  mode: dry_run\n")
	if got := problemTexts(t, c.Validate()); len(got) != 1 || !strings.HasPrefix(got[0], "2:9: gitlab.mode: dry_run reads merge requests") {
		t.Errorf("dry_run without url: problems = %q", got)
	}
}

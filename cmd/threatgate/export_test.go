package main

// threatgate export over a seeded history in a real store: the files of
// each format against the goldens in testdata/export (go test
// ./cmd/threatgate -update rewrites them), the same bundles after the
// policy is edited, the reads the export makes, and refused flags.

import (
	"bytes"
	"context"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/export")

const exportPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: ci, category: ci-cd, weight: 20, when: {paths: [".gitlab-ci.yml"]}}
  - {id: secret, category: data-exposure, weight: 20, redact: true, when: {added_lines: ['(?i)password\s*=\s*\S+']}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    review: [leads]
    checklist: [data-sensitivity]
    max_residual_risk: 9
    first_response: 4h
    decision: 24h
    controls: ["SOC2 CC8.1", "ISO27001 A.8.32"]
  - id: T1
    name: elevated
    when: {min_score: 20}
    approvals: [{group: appsec, count: 1}]
    decision: 2d
    controls: ["SOC2 CC8.1"]
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: carol, email: carol@example.com}
  - {gitlab: dave, email: dave@example.com}
authority: {retier: [leads], arbiter: [leads]}
`

// The seeded window: Monday 2 to Wednesday 4 November 2026, both included.
const exportFrom, exportTo = "2026-11-02", "2026-11-04"

// exportRig is a rig with the seeding script's helpers.
type exportRig struct {
	*testrig.Rig
	t *testing.T
}

func (r *exportRig) at(d time.Duration) { r.Clock.Set(testrig.T0.Add(d)) }

// mr opens or updates MR iid of shop/api by ann, touching paths (a path
// "+line" is a line added to app.go).
func (r *exportRig) mr(iid int64, action bot.MRAction, sha string, paths ...string) {
	r.t.Helper()
	m := &policies.MergeRequest{
		IID: iid, PathWithNamespace: "shop/api", Title: "Change " + strconv.FormatInt(iid, 10) + " | the login", TargetBranch: "main",
		SHA: sha, UpdatedAt: r.Clock.Now(), WebURL: "https://gitlab.example.com/shop/api/-/merge_requests/" + strconv.FormatInt(iid, 10),
		Author: policies.User{Username: "ann"},
	}
	for _, p := range paths {
		if line, ok := strings.CutPrefix(p, "+"); ok {
			m.Changes = append(m.Changes, policies.Change{OldPath: "app.go", NewPath: "app.go", Diff: "@@ -1 +1,2 @@\n ctx\n+" + line + "\n"})
			continue
		}
		m.Changes = append(m.Changes, policies.Change{OldPath: p, NewPath: p, Diff: "@@ -1 +1 @@\n+x\n"})
	}
	if _, err := r.Engine.Handle(context.Background(), bot.Input{Kind: bot.InputMR, Actor: bot.System, MR: &bot.MRInput{Action: action, MR: m}}); err != nil {
		r.t.Fatalf("MR %d: %v", iid, err)
	}
}

// do runs a chat command as person on escalation esc; it must be accepted.
func (r *exportRig) do(person, esc, line string) {
	r.t.Helper()
	c, err := bot.ParseCommand(line)
	if err != nil {
		r.t.Fatalf("parse %q: %v", line, err)
	}
	if _, err := r.Engine.Handle(context.Background(), bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "test"}, Command: &c, Escalation: esc}); err != nil {
		r.t.Fatalf("%s as %s: %v", line, person, err)
	}
}

// legacyOpen commits an escalation as threatgate recorded it before tier
// definitions were kept (an opening without TierDef); legacyApprove
// approves it.
func (r *exportRig) legacyOpen() string {
	r.t.Helper()
	opened := bot.Event{Kind: bot.EventOpened, Actor: "system", At: r.Clock.Now(), SHA: "5555555555555555555555555555555555555555", Data: bot.EventData{
		Project: "shop/api", MRIID: 5, MRURL: "https://gitlab.example.com/shop/api/-/merge_requests/5", Title: "Old CI change",
		Author: "ann", MRState: "opened", Tier: "T1", TierName: "elevated", Score: 20,
		Signals:     []policies.Fired{{ID: "ci", Category: "ci-cd", Weight: 20, Evidence: []string{".gitlab-ci.yml"}}},
		DecisionDue: r.Clock.Now().Add(48 * time.Hour), To: bot.StateInReview,
	}}
	esc, err := r.DB.Commit(context.Background(), &bot.Commit{Escalation: bot.Replay([]bot.Event{opened}), Events: []bot.Event{opened}, At: r.Clock.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return esc.ID
}

func (r *exportRig) legacyApprove(id string) {
	r.t.Helper()
	ctx := context.Background()
	events, err := r.DB.Events(ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	sha := events[0].SHA
	approved := bot.Event{Escalation: id, Kind: bot.EventApproved, Actor: "bob", At: r.Clock.Now(), SHA: sha, Data: bot.EventData{Group: "appsec", Text: "fine"}}
	moved := bot.Event{Escalation: id, Kind: bot.EventStateChanged, Actor: "bob", At: r.Clock.Now(), SHA: sha, Data: bot.EventData{From: bot.StateInReview, To: bot.StateApproved}}
	next := bot.Replay(append(events, approved, moved))
	if _, err := r.DB.Commit(ctx, &bot.Commit{Escalation: next, Expect: uint64(len(events)), Events: []bot.Event{approved, moved}, At: r.Clock.Now()}); err != nil {
		r.t.Fatal(err)
	}
}

// seedExport records a history in a real store:
//
//	ESC-1 T2: artifact, risk, dissent, approval with its checklist, an
//	      action item; approved Monday; merged Friday
//	ESC-2 T2 (a redacted secret): artifact; rejected Tuesday, after its deadline
//	ESC-3 T1, filed by hand by carol; withdrawn by her Monday
//	ESC-4 T1: merged without an approval Monday (a bypass)
//	ESC-5 T1, recorded before tier definitions were kept; approved Tuesday
//	ESC-6 T2: approved Friday, outside the window
//	ESC-7 T1: still in review
func seedExport(t *testing.T) *exportRig {
	t.Helper()
	r := &exportRig{Rig: testrig.NewRig(t, exportPolicy), t: t}
	const h = time.Hour
	r.at(0)
	r.mr(1, bot.MROpen, "1111111111111111111111111111111111111111", "internal/auth/session.go")
	r.mr(2, bot.MROpen, "2222222222222222222222222222222222222222", "internal/auth/token.go", `+password = "hunter2"`)
	r.do("carol", "", "/escalate shop/api!3 --tier T1 The retry loop may hammer the payment provider"+
		"\nsummary: Retries without backoff | jitter"+
		"\nassets: payments-api"+
		"\nexploit: none, an outage risk")
	r.mr(4, bot.MROpen, "4444444444444444444444444444444444444444", ".gitlab-ci.yml")
	r.at(30 * time.Minute)
	legacy := r.legacyOpen()

	r.at(1 * h)
	r.do("ann", "ESC-1", "/threatgate artifact threat-model https://wiki.example.com/tm/session-rotation")
	r.do("ann", "ESC-2", "/threatgate artifact threat-model Tokens are rotated | logged out after 30m; see *notes*")
	r.at(2 * h)
	r.do("bob", "ESC-1", "/threatgate risk 6 Likelihood 2 (a planted session id), impact 3 (one account)")
	r.mr(4, bot.MRMerge, "4444444444444444444444444444444444444444", ".gitlab-ci.yml")
	r.at(3 * h)
	r.do("carol", "ESC-1", "/threatgate dissent I'd rather rotate on every request | <b>not</b> only on login")
	r.at(4 * h)
	r.do("alice", "ESC-1", `/approve --check data-sensitivity="session ids only, no PII" Rotation on login closes the fixation hole.`)
	r.do("alice", "ESC-1", "/threatgate action @ann due:2026-11-20 Add the session-rotation test to the nightly suite")
	r.at(5 * h)
	r.do("carol", "ESC-3", "/threatgate withdraw The provider throttles us anyway")

	r.at(25 * h)
	r.legacyApprove(legacy)
	r.at(30 * h)
	r.do("bob", "ESC-2", "/threatgate reject Logging the token is not acceptable; mask it first.")

	// Friday: outside the window.
	r.at(4*24*h + 1*h)
	r.mr(6, bot.MROpen, "6666666666666666666666666666666666666666", "internal/auth/oidc.go")
	r.do("ann", "ESC-6", "/threatgate artifact threat-model https://wiki.example.com/tm/oidc")
	r.do("bob", "ESC-6", "/threatgate risk 4 low")
	r.do("alice", "ESC-6", `/approve --check data-sensitivity=none OK`)
	r.mr(1, bot.MRMerge, "1111111111111111111111111111111111111111", "internal/auth/session.go")
	r.mr(7, bot.MROpen, "7777777777777777777777777777777777777777", ".gitlab-ci.yml")
	return r
}

// closed runs fn with the rig's store closed (export opens it itself) and
// reopens it after, for the rig's cleanup and later commands.
func (r *exportRig) closed(fn func()) {
	r.t.Helper()
	if err := r.DB.Close(); err != nil {
		r.t.Fatal(err)
	}
	fn()
	db, err := store.Open(r.Dir, store.NoSync())
	if err != nil {
		r.t.Fatal(err)
	}
	r.DB = db
	r.Engine = bot.NewEngine(db, r.Engine.Policy(), r.Clock, nil)
}

// runExport runs threatgate export and returns its exit code and output.
func runExport(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code := e.export(args)
	return code, out.String(), errb.String()
}

// exportAll exports the seeded window in every format into fresh
// directories and returns them by format.
func (r *exportRig) exportAll() map[string]string {
	r.t.Helper()
	dirs := map[string]string{}
	r.closed(func() {
		for _, f := range bot.ExportFormats {
			dir := filepath.Join(r.t.TempDir(), "out")
			code, stdout, stderr := runExport(r.t, "--from", exportFrom, "--to", exportTo, "--format", f, "--out", dir, "--data", r.Dir)
			if code != exitOK {
				r.t.Fatalf("export --format %s: exit %d, stderr %q", f, code, stderr)
			}
			if !strings.Contains(stdout, "exported 5 escalations") {
				r.t.Errorf("export --format %s: stdout %q, want 5 escalations", f, stdout)
			}
			dirs[f] = dir
		}
	})
	return dirs
}

// readDir returns the files of dir by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func TestExportGolden(t *testing.T) {
	r := seedExport(t)
	for format, dir := range r.exportAll() {
		got := readDir(t, dir)
		golden := filepath.Join("testdata", "export", format)
		if *update {
			os.RemoveAll(golden)
			if err := os.MkdirAll(golden, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range got {
				if err := os.WriteFile(filepath.Join(golden, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		want := readDir(t, golden)
		var gotNames, wantNames []string
		for n := range got {
			gotNames = append(gotNames, n)
		}
		for n := range want {
			wantNames = append(wantNames, n)
		}
		slices.Sort(gotNames)
		slices.Sort(wantNames)
		if !slices.Equal(gotNames, wantNames) {
			t.Errorf("%s files = %q, want %q (go test ./cmd/threatgate -update rewrites them)", format, gotNames, wantNames)
		}
		for name, data := range got {
			if w, ok := want[name]; ok && !bytes.Equal(data, w) {
				t.Errorf("%s/%s differs from its golden (go test ./cmd/threatgate -update rewrites it):\n%s", format, name, data)
			}
		}
		for name, data := range got {
			if bytes.Contains(data, []byte("hunter2")) {
				t.Errorf("%s/%s carries the secret the signal redacted", format, name)
			}
		}
	}
}

// TestExportContents checks what the goldens are meant to show, so that
// an -update that loses something is caught.
func TestExportContents(t *testing.T) {
	r := seedExport(t)
	dirs := r.exportAll()
	md := readDir(t, dirs["md"])
	js := readDir(t, dirs["json"])
	for _, name := range []string{"index.md", "ESC-1.md", "ESC-2.md", "ESC-3.md", "ESC-4.md", "ESC-5.md"} {
		if md[name] == nil {
			t.Errorf("md: no %s", name)
		}
	}
	for _, name := range []string{"ESC-6.md", "ESC-7.md"} {
		if md[name] != nil {
			t.Errorf("md: %s is not decided in the window, but was exported", name)
		}
	}
	for _, tt := range []struct{ file, want string }{
		{"ESC-1.md", "**approved**"},
		{"ESC-1.md", "| data-sensitivity | session ids only, no PII |"},
		{"ESC-1.md", `I'd rather rotate on every request \| &lt;b&gt;not&lt;/b&gt; only on login`},
		{"ESC-1.md", "Score **6** (the tier's ceiling is 9)"},
		{"ESC-1.md", "| 1 | Add the session-rotation test to the nightly suite | ann | 2026-11-20 |"},
		{"ESC-1.md", "<https://wiki.example.com/tm/session-rotation>"},
		{"ESC-1.md", "- SOC2 CC8.1\n- ISO27001 A.8.32\n"},
		{"ESC-1.md", "merged"},
		{"ESC-2.md", "**rejected**"},
		{"ESC-2.md", "decided_after_deadline"},
		{"ESC-2.md", `Tokens are rotated \| logged out after 30m; see \*notes\*`},
		{"ESC-3.md", "**withdrawn**"},
		{"ESC-3.md", "## Manual escalation"},
		{"ESC-4.md", "**bypassed**"},
		{"ESC-5.md", "Tier definition not recorded"},
		{"index.md", "### SOC2 CC8.1"},
		{"index.md", "### ISO27001 A.8.32"},
		{"index.md", "tier definition not recorded"},
	} {
		if !strings.Contains(string(md[tt.file]), tt.want) {
			t.Errorf("md/%s lacks %q:\n%s", tt.file, tt.want, md[tt.file])
		}
	}
	if !bytes.Contains(js["ESC-1.json"], []byte(`"schema": "threatgate.bundle/v1"`)) {
		t.Errorf("ESC-1.json has no schema field:\n%s", js["ESC-1.json"])
	}
	if !bytes.Contains(js["index.json"], []byte(`"schema": "threatgate.export/v1"`)) {
		t.Errorf("index.json has no schema field")
	}
}

// TestExportIgnoresPolicyEdits: a bundle records what was in force when
// the escalation was decided; a new policy that renames the tier and
// changes its controls and checklist changes no byte of the export.
func TestExportIgnoresPolicyEdits(t *testing.T) {
	r := seedExport(t)
	before := r.exportAll()

	edited := strings.NewReplacer(
		"name: high", "name: very high",
		`controls: ["SOC2 CC8.1", "ISO27001 A.8.32"]`, `controls: ["PCI-DSS 6.4.1"]`,
		"checklist: [data-sensitivity]", "checklist: [data-sensitivity, rollback]",
		"artifacts: [threat-model]", "artifacts: [threat-model, rollback-plan]",
	).Replace(exportPolicy)
	pol, err := policies.Load("edited.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	if pol.Tier("T2").Name != "very high" {
		t.Fatal("the edit did not take")
	}
	r.Engine.SetPolicy(pol)
	// The log moves on under the new policy, outside the window.
	r.at(6 * 24 * time.Hour)
	r.mr(8, bot.MROpen, "8888888888888888888888888888888888888888", "internal/auth/mfa.go")

	after := r.exportAll()
	for _, f := range bot.ExportFormats {
		a, b := readDir(t, before[f]), readDir(t, after[f])
		if len(a) != len(b) {
			t.Errorf("%s: %d files before the edit, %d after", f, len(a), len(b))
		}
		for name, data := range a {
			if !bytes.Equal(data, b[name]) {
				t.Errorf("%s/%s changed after the policy was edited:\nbefore\n%s\nafter\n%s", f, name, data, b[name])
			}
		}
	}
	// The new escalation records the new definition.
	e, err := r.DB.FindByMR(context.Background(), "shop/api", 8)
	if err != nil {
		t.Fatal(err)
	}
	if e.TierDef == nil || e.TierDef.Name != "very high" || !slices.Equal(e.TierDef.Controls, []string{"PCI-DSS 6.4.1"}) {
		t.Errorf("TierDef of an escalation opened under the new policy = %+v", e.TierDef)
	}
}

// readsOnly is a store that records what an export reads and fails the
// test on a read of everything or of open escalations.
type readsOnly struct {
	*store.DB
	t       *testing.T
	windows int
	events  []string
	finds   []string
}

func (s *readsOnly) EventsBetween(ctx context.Context, from, to time.Time) ([]bot.Event, error) {
	s.windows++
	return s.DB.EventsBetween(ctx, from, to)
}

func (s *readsOnly) Events(ctx context.Context, id string) ([]bot.Event, error) {
	s.events = append(s.events, id)
	return s.DB.Events(ctx, id)
}

func (s *readsOnly) FindEscalation(ctx context.Context, id string) (*bot.Escalation, error) {
	s.finds = append(s.finds, id)
	return s.DB.FindEscalation(ctx, id)
}

func (s *readsOnly) FindOpen(context.Context) ([]*bot.Escalation, error) {
	s.t.Error("FindOpen: the export read the open escalations")
	return nil, nil
}

func (s *readsOnly) List(context.Context) ([]*bot.Escalation, error) {
	s.t.Error("List: the export read every escalation")
	return nil, nil
}

func (s *readsOnly) AllEvents(context.Context, func(bot.Event) error) error {
	s.t.Error("AllEvents: the export read the whole log")
	return nil
}

func TestExportReadsOnlyTheWindow(t *testing.T) {
	r := seedExport(t)
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tt := range []struct {
		name     string
		from, to string // [from, to)
		events   []string
		exported []string
	}{
		// Read: the escalations with a decision event in the window.
		{"seeded window", "2026-11-02", "2026-11-05", []string{"ESC-4", "ESC-1", "ESC-3", "ESC-5", "ESC-2"}, []string{"ESC-4", "ESC-1", "ESC-3", "ESC-5", "ESC-2"}},
		// ESC-1's merge is in it, but it was decided (approved) before.
		{"friday", "2026-11-06", "2026-11-07", []string{"ESC-6", "ESC-1"}, []string{"ESC-6"}},
		{"nothing decided", "2026-11-05", "2026-11-06", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &readsOnly{DB: r.DB, t: t}
			x, err := bot.ExportOf(context.Background(), s, day(tt.from), day(tt.to))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range x.Bundles {
				got = append(got, b.Escalation)
			}
			if !slices.Equal(got, tt.exported) {
				t.Errorf("exported %q, want %q", got, tt.exported)
			}
			if s.windows != 1 {
				t.Errorf("read %d windows of the log, want 1", s.windows)
			}
			if !slices.Equal(s.events, tt.events) {
				t.Errorf("read the events of %q, want %q (those with a decision in the window)", s.events, tt.events)
			}
			for _, id := range s.finds {
				if !slices.Contains(tt.exported, id) {
					t.Errorf("FindEscalation(%s): not decided in the window", id)
				}
			}
		})
	}
}

func TestExportFlags(t *testing.T) {
	r := seedExport(t)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := func() string { return filepath.Join(t.TempDir(), "out") }
	r.closed(func() {
		for _, tt := range []struct {
			name string
			args []string
			code int
			want []string // in stderr
		}{
			{"nothing", nil, exitUsage, []string{"--from: want a day", "--to: want a day", "--out: want the directory"}},
			{"bad dates", []string{"--from", "2026-13-01", "--to", "yesterday", "--out", fresh()}, exitUsage,
				[]string{`--from: want a day such as 2026-11-01 (YYYY-MM-DD), got "2026-13-01"`, `--to: want a day such as 2026-11-01 (YYYY-MM-DD), got "yesterday"`}},
			{"to before from", []string{"--from", "2026-11-04", "--to", "2026-11-02", "--out", fresh()}, exitUsage, []string{"--to: want a day on or after --from (2026-11-04), got 2026-11-02"}},
			{"format", []string{"--from", exportFrom, "--to", exportTo, "--format", "pdf", "--out", fresh()}, exitUsage, []string{`--format: want one of json, csv, md, got "pdf"`}},
			{"unknown flag", []string{"--since", "2026-11-01"}, exitUsage, []string{"flag provided but not defined: -since"}},
			{"argument", []string{"--from", exportFrom, "--to", exportTo, "--out", fresh(), "extra"}, exitUsage, []string{`takes no arguments, got "extra"`}},
			{"non-empty out", []string{"--from", exportFrom, "--to", exportTo, "--out", full, "--data", r.Dir}, exitFinding, []string{"is not empty (1 entries)", "--force"}},
			{"out is a file", []string{"--from", exportFrom, "--to", exportTo, "--out", file, "--data", r.Dir}, exitFinding, []string{"is a file; want a directory"}},
			{"no store", []string{"--from", exportFrom, "--to", exportTo, "--out", fresh(), "--data", t.TempDir()}, exitFinding, []string{"--data: no threatgate store in"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				code, stdout, stderr := runExport(t, tt.args...)
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
		// --force writes into a non-empty directory, replacing only its
		// own files.
		code, _, stderr := runExport(t, "--from", exportFrom, "--to", exportTo, "--format", "md", "--out", full, "--data", r.Dir, "--force")
		if code != exitOK {
			t.Fatalf("--force: exit %d, stderr %q", code, stderr)
		}
		got := readDir(t, full)
		if string(got["notes.txt"]) != "mine" || got["index.md"] == nil {
			t.Errorf("--force: files %v, want notes.txt kept and index.md written", slices.Sorted(maps.Keys(got)))
		}
		// --config names the data directory (data_dir); --data wins.
		cfg := writeFile(t, "config.yaml", "data_dir: "+r.Dir+"\n")
		if code, _, stderr := runExport(t, "--from", exportFrom, "--to", exportTo, "--out", fresh(), "--config", cfg); code != exitOK {
			t.Errorf("--config: exit %d, stderr %q", code, stderr)
		}
		if code, _, _ := runExport(t, "--from", exportFrom, "--to", exportTo, "--out", fresh(), "--config", cfg, "--data", t.TempDir()); code != exitFinding {
			t.Errorf("--data over --config: exit %d, want 1 (no store there)", code)
		}
		// A data directory that is not there is not created.
		missing := filepath.Join(t.TempDir(), "nope")
		if code, _, _ := runExport(t, "--from", exportFrom, "--to", exportTo, "--out", fresh(), "--data", missing); code != exitFinding {
			t.Errorf("missing --data: exit %d, want 1", code)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("export created the missing data directory %s", missing)
		}
	})
	// The store is in use: one line saying so.
	dir := fresh()
	code, _, stderr := runExport(t, "--from", exportFrom, "--to", exportTo, "--out", dir, "--data", r.Dir)
	if code != exitFinding || !strings.Contains(stderr, "is in use by a running threatgate") || !strings.Contains(stderr, "/admin/backup") {
		t.Errorf("store in use: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("a failed export created %s", dir)
	}
}

// TestBundleRecordsTheDefinitionDecidedUnder: the policy changes a tier
// while an escalation is in review; the approval is made under the new
// definition (its checklist), and the bundle shows that one, recorded with
// the decision, not the one in force when the tier was entered.
func TestBundleRecordsTheDefinitionDecidedUnder(t *testing.T) {
	r := &exportRig{Rig: testrig.NewRig(t, exportPolicy), t: t}
	r.at(0)
	r.mr(1, bot.MROpen, "1111111111111111111111111111111111111111", "internal/auth/session.go")
	r.do("ann", "ESC-1", "/threatgate artifact threat-model https://wiki.example.com/tm/1")
	r.do("bob", "ESC-1", "/threatgate risk 4 low")
	edited := strings.NewReplacer(
		"checklist: [data-sensitivity]", "checklist: [data-sensitivity, rollback]",
		`controls: ["SOC2 CC8.1", "ISO27001 A.8.32"]`, `controls: ["PCI-DSS 6.4.1"]`,
	).Replace(exportPolicy)
	pol, err := policies.Load("edited.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	r.Engine.SetPolicy(pol)
	r.at(time.Hour)
	r.do("alice", "ESC-1", `/approve --check data-sensitivity=none --check rollback="revert the MR" Fine.`)
	ctx := context.Background()
	e, err := r.DB.FindEscalation(ctx, "ESC-1")
	if err != nil || e.State != bot.StateApproved {
		t.Fatalf("ESC-1 = %+v, %v; want approved", e, err)
	}
	evs, err := r.DB.Events(ctx, "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	b := bot.BuildBundle(e, evs)
	if d := b.Tier.Definition; d == nil || !slices.Equal(d.Checklist, []string{"data-sensitivity", "rollback"}) || !slices.Equal(b.Controls, []string{"PCI-DSS 6.4.1"}) {
		t.Errorf("bundle definition = %+v, controls %v; want the one the approval was made under", b.Tier.Definition, b.Controls)
	}
	last := evs[len(evs)-1]
	if last.Kind != bot.EventStateChanged || last.Data.TierDef == nil {
		t.Errorf("the decision did not record its definition: %+v", last)
	}
	// Unchanged policy: no definition repeated on the decision.
	r.mr(2, bot.MROpen, "2222222222222222222222222222222222222222", "internal/auth/token.go")
	r.do("ann", "ESC-2", "/threatgate artifact threat-model https://wiki.example.com/tm/2")
	r.do("bob", "ESC-2", "/threatgate risk 4 low")
	r.do("alice", "ESC-2", `/approve --check data-sensitivity=none --check rollback=revert Fine.`)
	evs, _ = r.DB.Events(ctx, "ESC-2")
	if last := evs[len(evs)-1]; last.Kind != bot.EventStateChanged || last.Data.To != bot.StateApproved || last.Data.TierDef != nil {
		t.Errorf("a decision under the definition recorded at opening repeated it: %+v", last)
	}
}

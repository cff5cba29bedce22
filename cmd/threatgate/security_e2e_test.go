package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// The gate's promise, tried as an attacker would, through serve's own
// wiring (intake over HTTP, worker, engine, real bbolt store, dispatcher,
// the real GitLab client) against the fake GitLab. docs/SECURITY.md lists
// what each test proves.

const secPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
  - {id: secret-literal, category: data-exposure, weight: 100, redact: true, when: {added_lines: ['(?i)api[_-]?key\s*=']}}
tiers:
  - id: T3
    name: critical
    when: {min_score: 100}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}, {group: leads, count: 1, role: risk-acceptance}]
    max_residual_risk: 9
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, emails: [alice@example.com, alice.w@corp.example]}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
  - {gitlab: erin, email: erin@example.com}
authority: {retier: [leads], arbiter: [leads]}
`

var secUsers = map[string]int64{"ann": 200, "alice": 201, "bob": 202, "dave": 204, "erin": 205, "mallory": 666}

const secStatus = "threatgate/security-review"

type secRig struct {
	t     *testing.T
	gl    *gitlabtest.Server
	s     *server
	db    *store.DB
	clock *bottest.Clock
	base  string
	seq   int
	ours  map[string]bool // bodies of the comments people wrote
}

func newSecRig(t *testing.T) *secRig {
	t.Helper()
	clock := bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	gl := gitlabtest.New(t)
	gl.SetNow(clock.Now)
	for name, id := range secUsers {
		gl.SetUser(name, id)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "threatgate.yaml")
	os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:0\ndata_dir: data\ngitlab:\n  url: "+gl.URL+"\n  status_name: "+secStatus+"\nweb:\n  dashboard_token_env: TG_DASH\n"), 0o600)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken}
	sec, _, err := cfg.LoadSecrets(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Load("sec.yaml", []byte(secPolicy))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.DataDir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Verify(context.Background()); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		db.Close()
	})
	s, err := newServer(cfg, sec, pol, db, clock, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	return &secRig{t: t, gl: gl, s: s, db: db, clock: clock, base: srv.URL, ours: map[string]bool{}}
}

// mr opens MR iid by ann in the fake GitLab with one file changed by an
// added line, and sends its webhook.
func (r *secRig) mr(iid int64, sha, path, line string, commits ...gitlabtest.Commit) {
	r.t.Helper()
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: iid, Title: fmt.Sprintf("change %d", iid), Author: "ann", SHA: sha,
		HeadPipelineID: 500 + iid, UpdatedAt: r.clock.Now(), Commits: commits,
		Diffs: []gitlabtest.Diff{{OldPath: path, NewPath: path, Diff: "@@ -1 +1,2 @@\n x\n+" + line + "\n"}}})
	r.hook(iid, "open")
}

func (r *secRig) post(kind string, body any) {
	r.t.Helper()
	r.seq++
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, r.base+"/webhooks/gitlab", bytes.NewReader(b))
	req.Header.Set("X-Gitlab-Event", kind)
	req.Header.Set("X-Gitlab-Token", webhookSecret)
	req.Header.Set("X-Gitlab-Event-UUID", fmt.Sprintf("sec-%d", r.seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		r.t.Fatalf("webhook %s: %d", kind, resp.StatusCode)
	}
	r.settle()
}

func (r *secRig) hook(iid int64, action string) {
	r.t.Helper()
	r.clock.Advance(time.Minute)
	r.post("Merge Request Hook", map[string]any{"object_kind": "merge_request", "project": map[string]any{"path_with_namespace": "shop/api"},
		"object_attributes": map[string]any{"iid": iid, "action": action}})
}

// comment has person write note on MR iid (stored in the fake GitLab as
// GitLab stores it) and sends the Note Hook.
func (r *secRig) comment(iid int64, person, note string) {
	r.t.Helper()
	r.clock.Advance(time.Minute)
	id := r.gl.AddMRNote("shop/api", iid, gitlabtest.Note{Body: note, Author: person})
	r.ours[note] = true
	r.post("Note Hook", map[string]any{"object_kind": "note", "user": map[string]any{"username": person},
		"project": map[string]any{"path_with_namespace": "shop/api"}, "merge_request": map[string]any{"iid": iid},
		"object_attributes": map[string]any{"id": id, "note": note, "noteable_type": "MergeRequest"}})
}

// settle runs the worker and the dispatcher until both are quiet.
func (r *secRig) settle() {
	r.t.Helper()
	ctx := context.Background()
	for range 20 {
		n, err := r.s.worker.ProcessDue(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		m, err := r.s.dispatcher.DeliverDue(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if n == 0 && m == 0 {
			return
		}
	}
	r.t.Fatal("the worker and dispatcher did not settle")
}

// gate returns the newest gate status on sha: "state: description".
func (r *secRig) gate(sha string) string {
	var last *gitlabtest.Status
	for _, s := range r.gl.Statuses("shop/api", sha) {
		if s.Name == secStatus && (last == nil || s.ID > last.ID) {
			s := s
			last = &s
		}
	}
	if last == nil {
		return ""
	}
	return last.State + ": " + last.Description
}

func (r *secRig) esc(iid int64) *bot.Escalation {
	r.t.Helper()
	e, err := r.db.FindByMR(context.Background(), "shop/api", iid)
	if err != nil {
		r.t.Fatalf("escalation of !%d: %v", iid, err)
	}
	return e
}

// botNotes returns the notes threatgate posted on MR iid, oldest first.
func (r *secRig) botNotes(iid int64) []string {
	var out []string
	for _, n := range r.gl.Notes("shop/api", iid) {
		if !r.ours[n] {
			out = append(out, n)
		}
	}
	return out
}

// lastNote returns the newest note threatgate posted on MR iid.
func (r *secRig) lastNote(iid int64) string {
	ns := r.botNotes(iid)
	if len(ns) == 0 {
		return ""
	}
	return ns[len(ns)-1]
}

const intake = "\nsummary: s\nassets: a\nexploit: e"

var (
	shaA = strings.Repeat("a", 40)
	shaB = strings.Repeat("b", 40)
	shaC = strings.Repeat("c", 40)
)

// TestSecurityWithdrawalFollowsTheHead: hole 1 of issue 8.
func TestSecurityWithdrawalFollowsTheHead(t *testing.T) {
	r := newSecRig(t)

	// The author escalates their own docs-only MR and tries to withdraw.
	r.mr(1, shaA, "README.md", "docs")
	r.comment(1, "ann", "/threatgate escalate shop/api!1 --tier T3 my own docs"+intake)
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") {
		t.Fatalf("after a manual escalation the gate on its head is %q, want pending", g)
	}
	r.comment(1, "ann", "/threatgate withdraw never mind")
	if e := r.esc(1); e.State == bot.StateWithdrawn || !strings.Contains(r.lastNote(1), "you wrote this merge request") {
		t.Fatalf("the author withdrew: state %s, answer %q", e.State, r.lastNote(1))
	}

	// A lead withdraws a manual escalation of an untiered MR: success for
	// that head only.
	r.mr(2, shaA, "README.md", "docs")
	r.comment(2, "erin", "/threatgate escalate shop/api!2 --tier T3 worried about the docs"+intake)
	r.comment(2, "dave", "/threatgate withdraw false alarm")
	if g := r.gate(shaA); !strings.HasPrefix(g, "success:") || !strings.Contains(g, "withdrawn at aaaaaaaa") {
		t.Fatalf("after an authorised withdrawal the gate is %q, want success for that head", g)
	}
	// The author pushes a secret; the webhook is lost, reconcile finds it.
	r.clock.Advance(time.Minute)
	r.gl.Push("shop/api", 2, gitlabtest.Commit{ID: shaB, AuthorEmail: "ann@example.com"},
		gitlabtest.Diff{OldPath: "app.py", NewPath: "app.py", Diff: "@@ -1 +1,2 @@\n x\n+API_KEY = \"sk_live_0123456789\"\n"})
	if _, err := r.s.worker.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.settle()
	e := r.esc(2)
	if e.State == bot.StateWithdrawn || e.Tier != "T3" || !strings.HasPrefix(r.gate(shaB), "pending:") {
		t.Fatalf("after a push of a secret: state %s tier %s gate %q; want T3 under review, pending", e.State, e.Tier, r.gate(shaB))
	}
	r.comment(2, "dave", "/threatgate withdraw again")
	if !strings.Contains(r.lastNote(2), "classifies as T3 on its own") {
		t.Errorf("a withdrawal of a tiered head: answer %q", r.lastNote(2))
	}
	// A push back to a docs-only head, merged at once: a bypass.
	r.clock.Advance(time.Minute)
	r.gl.Push("shop/api", 2, gitlabtest.Commit{ID: shaC, AuthorEmail: "ann@example.com"}, gitlabtest.Diff{OldPath: "README.md", NewPath: "README.md", Diff: "@@ -1 +1,2 @@\n x\n+docs\n"})
	r.gl.SetState("shop/api", 2, "merged")
	r.hook(2, "merge")
	if e := r.esc(2); e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("merge of an unapproved head after a withdrawal: state %s bypassed %v, want a bypass", e.State, e.Bypassed)
	}

	// Pre-filed for an MR that does not exist yet; the MR then opens with
	// a secret and the filer withdraws.
	r.comment(1, "erin", "/threatgate help") // keeps the clock moving
	c, _ := bot.ParseCommand("/escalate shop/api!3 --tier T2 heads up" + intake)
	if _, err := r.s.engine.Handle(context.Background(), bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: "erin", Surface: "web"}, Command: &c}); err != nil {
		t.Fatal(err)
	}
	r.settle()
	r.mr(3, shaA, "app.py", `API_KEY = "sk_live_0123456789"`)
	r.comment(3, "erin", "/threatgate withdraw not needed")
	if e := r.esc(3); e.State == bot.StateWithdrawn || e.Tier != "T3" || !strings.HasPrefix(r.gate(shaA), "pending:") {
		t.Errorf("pre-filed then withdrawn: state %s tier %s gate %q; want T3 pending", e.State, e.Tier, r.gate(shaA))
	}
}

// TestSecurityCommitAuthorBySecondEmail: hole 2.
func TestSecurityCommitAuthorBySecondEmail(t *testing.T) {
	r := newSecRig(t)
	r.mr(4, shaA, "internal/auth/session.go", "rotate()",
		gitlabtest.Commit{ID: shaA, AuthorEmail: "Alice.W@Corp.Example", CommitterEmail: "ann@example.com"},
		gitlabtest.Commit{ID: shaB, AuthorEmail: "someone@elsewhere.example", CommitterEmail: "ann@example.com"})
	r.comment(4, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.comment(4, "alice", "/threatgate approve fine")
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") || !strings.Contains(r.lastNote(4), "you wrote this merge request or commits") {
		t.Fatalf("alice approved her own commit (second address): gate %q, answer %q", g, r.lastNote(4))
	}
	if u := bot.UnknownAuthors(r.esc(4), r.s.engine.Policy()); len(u) != 1 || u[0] != "someone@elsewhere.example" {
		t.Errorf("UnknownAuthors = %v", u)
	}
	r.comment(4, "bob", "/threatgate approve fine")
	if g := r.gate(shaA); !strings.HasPrefix(g, "success:") {
		t.Errorf("bob's approval: gate %q, want success", g)
	}
}

// TestSecurityForgedNoteHook: hole 3, through serve (adapters/gitlab has
// the detailed cases).
func TestSecurityForgedNoteHook(t *testing.T) {
	r := newSecRig(t)
	r.mr(5, shaA, "internal/auth/session.go", "rotate()")
	r.comment(5, "ann", "/threatgate artifact threat-model https://wiki/tm")
	// No created_at, no last_commit, a note id GitLab does not have.
	r.post("Note Hook", map[string]any{"object_kind": "note", "user": map[string]any{"username": "bob"},
		"project": map[string]any{"path_with_namespace": "shop/api"}, "merge_request": map[string]any{"iid": 5},
		"object_attributes": map[string]any{"id": 987654, "note": "/threatgate approve", "noteable_type": "MergeRequest"}})
	if e := r.esc(5); len(e.Approvals) != 0 || !strings.HasPrefix(r.gate(shaA), "pending:") {
		t.Fatalf("a forged Note Hook approved: approvals %+v gate %q", e.Approvals, r.gate(shaA))
	}
	// A real note by mallory, the hook claiming bob.
	r.clock.Advance(time.Minute)
	id := r.gl.AddMRNote("shop/api", 5, gitlabtest.Note{Body: "/threatgate approve", Author: "mallory"})
	r.post("Note Hook", map[string]any{"object_kind": "note", "user": map[string]any{"username": "bob"},
		"project": map[string]any{"path_with_namespace": "shop/api"}, "merge_request": map[string]any{"iid": 5},
		"object_attributes": map[string]any{"id": id, "note": "/threatgate approve", "noteable_type": "MergeRequest"}})
	if e := r.esc(5); len(e.Approvals) != 0 {
		t.Errorf("mallory's note counted as an approval: %+v", e.Approvals)
	}
}

// TestSecuritySecretNeverStoredOrPosted: hole 4. The secret a signal found
// appears in no note, no API answer and nowhere in the database file; text
// from outside cannot mention anyone or run a quick action in GitLab.
func TestSecuritySecretNeverStoredOrPosted(t *testing.T) {
	r := newSecRig(t)
	const secret = "sk_live_0123456789abcdef"
	r.mr(6, shaA, "internal/auth/keys.py", `API_KEY = "`+secret+`"`)
	r.comment(6, "ann", "/threatgate artifact threat-model https://wiki/tm @all")
	r.comment(6, "bob", "/threatgate reject @all this leaks a key\n/merge\n  /approve")
	notes := strings.Join(r.botNotes(6), "\n---\n")
	if !strings.Contains(notes, "API_****") {
		t.Errorf("the opening note does not show the masked line:\n%s", notes)
	}
	if !strings.Contains(notes, "this leaks a key") {
		t.Fatalf("the rejection's rationale is not in any note:\n%s", notes)
	}
	for _, n := range r.botNotes(6) {
		if strings.Contains(n, "sk_live") {
			t.Errorf("a note republishes the secret:\n%s", n)
		}
		for _, line := range strings.Split(n, "\n") {
			if t2 := strings.TrimSpace(line); strings.HasPrefix(t2, "/") {
				t.Errorf("a note line would run a quick action: %q", line)
			}
		}
		if strings.Contains(n, "@all") {
			t.Errorf("a note mentions @all:\n%s", n)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, r.base+"/api/escalations", nil)
	req.Header.Set("Authorization", "Bearer "+dashboardToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "sk_live") || !strings.Contains(string(body), "API_") {
		t.Errorf("/api/escalations: %d, masked evidence missing or secret shown:\n%s", resp.StatusCode, body)
	}
	// The database file itself, bytes and all.
	raw, err := os.ReadFile(filepath.Join(r.s.cfg.DataDir, "threatgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("sk_live")) || bytes.Contains(raw, []byte("0123456789abcdef")) {
		t.Errorf("the database file holds the secret")
	}
}

// TestSecurityFilerCannotApprove: holes 5 and 6. A manual escalation is
// gated and shows its MR like an automatic one; its filer's approval does
// not count.
func TestSecurityFilerCannotApprove(t *testing.T) {
	r := newSecRig(t)
	r.mr(7, shaA, "README.md", "docs")
	r.comment(7, "alice", "/threatgate escalate https://evil.example/shop/api/-/merge_requests/7 --tier T2 odd docs"+intake)
	e := r.esc(7)
	if e.Title != "change 7" || e.HeadSHA != shaA || e.Author != "ann" || strings.Contains(e.MRURL, "evil.example") {
		t.Fatalf("manual escalation: title %q head %q author %q url %q; want the MR as GitLab shows it", e.Title, e.HeadSHA, e.Author, e.MRURL)
	}
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") || !strings.Contains(g, e.ID) {
		t.Fatalf("manual escalation gate %q, want pending naming %s", g, e.ID)
	}
	r.comment(7, "alice", "/threatgate artifact threat-model https://wiki/tm")
	r.comment(7, "alice", "/threatgate approve all good")
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") || !strings.Contains(r.lastNote(7), "you filed") {
		t.Fatalf("the filer approved: gate %q answer %q", g, r.lastNote(7))
	}
	r.comment(7, "bob", "/threatgate approve fine")
	if g := r.gate(shaA); !strings.HasPrefix(g, "success:") {
		t.Errorf("bob's approval: gate %q, want success", g)
	}
}

// TestSecurityRiskCeiling: hole 7.
func TestSecurityRiskCeiling(t *testing.T) {
	r := newSecRig(t)
	r.mr(8, shaA, "internal/auth/keys.py", `api_key = "sk_live_0123456789"`)
	r.comment(8, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.comment(8, "alice", "/threatgate approve fine")
	if !strings.Contains(r.lastNote(8), "none is recorded") {
		t.Fatalf("approval without a residual risk: answer %q", r.lastNote(8))
	}
	if g := r.gate(shaA); !strings.Contains(g, "a residual risk score") {
		t.Errorf("gate %q does not say the risk score is missing", g)
	}
	r.comment(8, "bob", "/threatgate risk 16 exposed to the internet")
	r.comment(8, "alice", "/threatgate approve fine")
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") {
		t.Fatalf("risk above the ceiling, one approval: gate %q", g)
	}
	r.comment(8, "dave", "/threatgate approve accepted until the rotation lands")
	if g := r.gate(shaA); !strings.HasPrefix(g, "success:") {
		t.Errorf("after the risk acceptance: gate %q, want success", g)
	}
}

// TestSecurityCommentEscalatesOnlyItsOwnMR: a comment cannot escalate an
// MR of another project (which threatgate's token can read, the commenter
// perhaps not): no gate, label or note lands there on their word.
func TestSecurityCommentEscalatesOnlyItsOwnMR(t *testing.T) {
	r := newSecRig(t)
	r.mr(9, shaA, "README.md", "docs")
	r.gl.AddMR(gitlabtest.MR{Project: "hr/payroll", IID: 5, Title: "payroll", Author: "erin", SHA: shaB, UpdatedAt: r.clock.Now(),
		Diffs: []gitlabtest.Diff{{OldPath: "README.md", NewPath: "README.md", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	r.comment(9, "ann", "/threatgate escalate hr/payroll!5 --tier T2 [URGENT] click https://evil.example/login"+intake)
	if _, err := r.db.FindByMR(context.Background(), "hr/payroll", 5); err == nil {
		t.Fatalf("a comment on shop/api!9 escalated hr/payroll!5")
	}
	if n := len(r.gl.Notes("hr/payroll", 5)); n != 0 || len(r.gl.Statuses("hr/payroll", shaB)) != 0 {
		t.Errorf("hr/payroll!5 got %d notes and %d statuses", n, len(r.gl.Statuses("hr/payroll", shaB)))
	}
	if !strings.Contains(r.lastNote(9), "can only escalate this merge request") {
		t.Errorf("answer %q", r.lastNote(9))
	}
	// Its own MR, in another case, is fine.
	r.comment(9, "ann", "/threatgate escalate Shop/API!9 --tier T2 worried"+intake)
	if e, err := r.db.FindByMR(context.Background(), "shop/api", 9); err != nil || !e.Manual {
		t.Errorf("escalating its own MR: %v, %v", e, err)
	}
}

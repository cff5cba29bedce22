package gitlab

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

const e2ePolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
groups:
  appsec: {members: [alice, bob, carol]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: carol, gitlab_id: 203, email: carol@example.com}
`

// GitLab user ids of the people in e2ePolicy, as the fake GitLab has them.
var e2eUsers = map[string]int64{"ann": 200, "alice": 201, "bob": 202, "carol": 203, "mallory": 666}

const statusName = "threatgate/security-review"

// rig is threatgate's GitLab path end to end: real intake over HTTP, the
// real store, engine, worker and dispatcher, the real GitLab client, and a
// fake GitLab behind it.
type rig struct {
	t      *testing.T
	gl     *gitlabtest.Server
	client *Client
	db     *store.DB
	clock  *bottest.Clock
	worker *Worker
	disp   *bot.Dispatcher
	srv    *httptest.Server
	logs   *syncBuffer // the worker's log
	seq    int
}

func newRig(t *testing.T, gate string) *rig {
	t.Helper()
	return newRigWith(t, gate, e2ePolicy, e2eUsers)
}

// newRigWith is newRig with another policy and other GitLab users.
func newRigWith(t *testing.T, gate, policyYAML string, users map[string]int64) *rig {
	t.Helper()
	pol, err := policies.Load("e2e.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	clock := bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	gl := gitlabtest.New(t)
	gl.SetNow(clock.Now)
	for name, id := range users {
		gl.SetUser(name, id)
	}
	gl.AddStatusCheck("shop/api", 77, statusName)
	client, err := New(Config{BaseURL: gl.URL, Token: bot.Secret(gl.Token), StatusName: statusName, Gate: gate, DashboardURL: "https://tg.example.com", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client.now = clock.Now
	db := openStore(t)
	eng := bot.NewEngine(db, pol, clock, nil)
	r := &rig{t: t, gl: gl, client: client, db: db, clock: clock, logs: &syncBuffer{}}
	r.worker = &Worker{Inbox: db, Fetch: client, Engine: eng, Store: db, Answer: true, Clock: clock,
		Log: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r.disp = bot.NewDispatcher(db, client, nil, nil, clock, nil)
	mux := http.NewServeMux()
	mux.Handle("/webhooks/gitlab", &Intake{Secret: testSecret, Inbox: db, Clock: clock})
	mux.Handle("/webhooks/gitlab/status-check", &StatusCheck{Secret: testSecret, Inbox: db, Clock: clock})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rig) addMR(iid int64, sha string, paths ...string) {
	var diffs []gitlabtest.Diff
	for _, p := range paths {
		diffs = append(diffs, gitlabtest.Diff{OldPath: p, NewPath: p, Diff: "@@ -1 +1,2 @@\n x\n+y\n"})
	}
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: iid, Title: "change", Author: "ann", SHA: sha,
		HeadPipelineID: 500 + iid, Diffs: diffs, UpdatedAt: r.clock.Now()})
}

// hook posts a Merge Request Hook for iid and returns the HTTP status.
func (r *rig) hook(iid int64, action, sha, uuid string) int {
	r.t.Helper()
	body := mrHookJSON(iid, action, sha, r.clock.Now())
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("X-Gitlab-Event", EventMergeRequest)
	req.Header.Set("X-Gitlab-Token", string(testSecret))
	if uuid == "" {
		r.seq++
		uuid = fmt.Sprintf("uuid-%d", r.seq)
	}
	req.Header.Set("X-Gitlab-Event-UUID", uuid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// comment has person write note on MR iid in GitLab, now, and GitLab
// send its Note Hook. It returns the note's id.
func (r *rig) comment(iid int64, person, note string) int64 {
	r.t.Helper()
	return r.writeNote(iid, gitlabtest.Note{Body: note, Author: person})
}

// writeNote stores n in the fake GitLab and sends the Note Hook GitLab
// would send for it. It returns the note's id.
func (r *rig) writeNote(iid int64, n gitlabtest.Note) int64 {
	r.t.Helper()
	id := r.gl.AddMRNote("shop/api", iid, n)
	at := n.CreatedAt
	if at.IsZero() {
		at = r.clock.Now()
	}
	sha := ""
	if mr, ok := r.gl.MR("shop/api", iid); ok {
		sha = mr.SHA
	}
	r.noteHook(iid, n.Author, n.Body, id, sha, &at)
	return id
}

// noteHook posts a Note Hook as given, whatever GitLab holds: the claimed
// author, the note's text and id, the MR head the author saw ("" for
// none) and when the note was written (nil for none).
func (r *rig) noteHook(iid int64, person, note string, id int64, seenSHA string, created *time.Time) {
	r.t.Helper()
	r.seq++
	mr := map[string]any{"iid": iid}
	if seenSHA != "" {
		mr["last_commit"] = map[string]any{"id": seenSHA}
	}
	attrs := map[string]any{"id": id, "note": note, "noteable_type": "MergeRequest"}
	if created != nil {
		attrs["created_at"] = created.Format(time.RFC3339)
	}
	body, _ := json.Marshal(map[string]any{
		"object_kind":       "note",
		"user":              map[string]any{"username": person},
		"project":           map[string]any{"path_with_namespace": "shop/api"},
		"object_attributes": attrs,
		"merge_request":     mr,
	})
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("X-Gitlab-Event", EventNote)
	req.Header.Set("X-Gitlab-Token", string(testSecret))
	req.Header.Set("X-Gitlab-Event-UUID", fmt.Sprintf("note-%d", r.seq))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("comment: %v %v", resp, err)
	}
	resp.Body.Close()
}

func mrHookJSON(iid int64, action, sha string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"object_kind": "merge_request",
		"user":        map[string]any{"username": "ann"},
		"project":     map[string]any{"id": 7, "path_with_namespace": "shop/api"},
		"object_attributes": map[string]any{"iid": iid, "action": action, "state": "opened", "title": "change",
			"updated_at": at.Format(time.RFC3339), "last_commit": map[string]any{"id": sha}},
		"labels": []any{},
	})
	return b
}

// settle processes the inbox and delivers the outbox until both are quiet.
func (r *rig) settle() {
	r.t.Helper()
	ctx := context.Background()
	for range 10 {
		n, err := r.worker.ProcessDue(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		m, err := r.disp.DeliverDue(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if n == 0 && m == 0 {
			return
		}
	}
}

func (r *rig) statuses(sha string) []string {
	var out []string
	for _, s := range r.gl.Statuses("shop/api", sha) {
		if s.Name == statusName {
			out = append(out, s.State+" by "+s.Author)
		}
	}
	return out
}

func (r *rig) lastStatus(sha string) gitlabtest.Status {
	all := r.gl.Statuses("shop/api", sha)
	var last gitlabtest.Status
	for _, s := range all {
		if s.Name == statusName && (last.CreatedAt.IsZero() || !s.CreatedAt.Before(last.CreatedAt)) {
			last = s
		}
	}
	return last
}

func (r *rig) escalation(iid int64) *bot.Escalation {
	r.t.Helper()
	e, err := r.db.FindByMR(context.Background(), "shop/api", iid)
	if err != nil {
		r.t.Fatalf("escalation of !%d: %v", iid, err)
	}
	return e
}

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
)

func TestGateApprovalPath(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(12, sha1, "internal/auth/session.go")
	if code := r.hook(12, "open", sha1, ""); code != 200 {
		t.Fatalf("open hook: %d", code)
	}
	r.settle()
	st := r.lastStatus(sha1)
	if st.State != "pending" || st.PipelineID != 512 || !strings.Contains(st.TargetURL, "/escalations/ESC-1") || !strings.HasPrefix(st.Description, "ESC-1 T2") || !strings.Contains(st.Description, "threat-model") {
		t.Fatalf("status after open: %+v; want pending in the head pipeline, linking ESC-1, naming what is missing", st)
	}
	notes := r.gl.Notes("shop/api", 12)
	if len(notes) != 1 || !strings.Contains(notes[0], "ESC-1") || !strings.Contains(notes[0], "auth") {
		t.Fatalf("notes after open: %q", notes)
	}
	if labels := r.gl.Labels("shop/api", 12); len(labels) != 1 || labels[0] != "security-tier::T2" {
		t.Errorf("labels = %v", labels)
	}

	// In MR comments: the author hands in the artifact, the author's
	// approval is refused, an appsec member approves.
	r.comment(12, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.comment(12, "ann", "/threatgate approve")
	r.comment(12, "alice", "LGTM\n/threatgate approve reviewed the rotation")
	r.settle()
	if st := r.lastStatus(sha1); st.State != "success" {
		t.Fatalf("status after approval: %+v", st)
	}
	if e := r.escalation(12); e.State != bot.StateApproved || len(e.Approvals) != 1 || e.Approvals[0].By != "alice" {
		t.Fatalf("escalation: %s %+v", e.State, e.Approvals)
	}
	notes = r.gl.Notes("shop/api", 12)
	if !containsAny(notes, "you wrote this merge request") {
		t.Errorf("the author's refused approval got no answer: %q", notes)
	}

	// New commits: the approval goes stale; pending again on the new head.
	r.clock.Advance(time.Minute)
	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.hook(12, "update", sha2, "")
	r.settle()
	if st := r.lastStatus(sha2); st.State != "pending" {
		t.Fatalf("status on the new head: %+v", st)
	}
	if e := r.escalation(12); e.State != bot.StateInReview || !e.Approvals[0].Stale {
		t.Errorf("after push: %s, approval stale=%v", e.State, e.Approvals[0].Stale)
	}
	if st := r.lastStatus(sha1); st.State != "success" {
		t.Errorf("the old head's status was touched: %+v", st)
	}
}

func containsAny(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestDuplicateAndOutOfOrderDeliveries(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(3, sha1, "auth/login.go")
	// The update arrives before the open; then the open; then the update
	// again (redelivered with its UUID).
	r.hook(3, "update", sha1, "u-update")
	r.hook(3, "open", sha1, "u-open")
	if code := r.hook(3, "update", sha1, "u-update"); code != 200 {
		t.Fatalf("redelivery answered %d", code)
	}
	r.settle()
	all, _ := r.db.List(context.Background())
	if len(all) != 1 {
		t.Fatalf("%d escalations, want 1", len(all))
	}
	if n := len(r.gl.Notes("shop/api", 3)); n != 1 {
		t.Errorf("%d notes, want 1", n)
	}
	if got := r.statuses(sha1); len(got) != 1 {
		t.Errorf("statuses %v, want one pending", got)
	}
}

func TestReconcileCatchesMissedEvents(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	r.addMR(5, sha1, "auth/a.go")
	r.addMR(6, sha1, "auth/b.go")
	r.hook(5, "open", sha1, "")
	r.hook(6, "open", sha1, "")
	r.settle()
	// Webhooks lost: !5 was closed, !6 got a push, and someone set the
	// gate's status to success on !6's old head with their own token.
	r.clock.Advance(time.Minute)
	r.gl.SetState("shop/api", 5, "closed")
	r.gl.PushCommit("shop/api", 6, sha2, gitlabtest.Diff{OldPath: "auth/b.go", NewPath: "auth/b.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.gl.SetStatusAs("shop/api", sha2, statusName, "success", "mallory")
	n, err := r.worker.Reconcile(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Reconcile = %d, %v", n, err)
	}
	r.settle()
	if e := r.escalation(5); e.State != bot.StateWithdrawn {
		t.Errorf("!5 is %s, want withdrawn", e.State)
	}
	e := r.escalation(6)
	if e.HeadSHA != sha2 || e.Forged != 1 {
		t.Errorf("!6 head %s forged %d, want the new head and the forged status recorded", e.HeadSHA, e.Forged)
	}
	if st := r.lastStatus(sha2); st.State != "pending" || st.Author != gitlabtest.DefaultBotUser {
		t.Errorf("status on the new head: %+v; want threatgate's pending over the forged success", st)
	}
	// Idempotent: reconciling again changes nothing.
	before := len(r.gl.Requests())
	evs, _ := r.db.Events(ctx, e.ID)
	r.worker.Reconcile(ctx)
	r.settle()
	evs2, _ := r.db.Events(ctx, e.ID)
	if len(evs2) != len(evs) {
		t.Errorf("a second reconcile added %d events", len(evs2)-len(evs))
	}
	for _, req := range r.gl.Requests()[before:] {
		if req.Method != http.MethodGet {
			t.Errorf("a second reconcile wrote to GitLab: %s %s", req.Method, req.Path)
		}
	}
}

func TestApprovalAfterALostPushIsForTheNewHead(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(15, sha1, "auth/a.go")
	r.hook(15, "open", sha1, "")
	r.comment(15, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.settle()
	// A push whose webhook never arrives, then an approval.
	r.clock.Advance(time.Minute)
	r.gl.PushCommit("shop/api", 15, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.comment(15, "alice", "/threatgate approve")
	r.settle()
	e := r.escalation(15)
	if e.HeadSHA != sha2 || e.Approvals[0].SHA != sha2 || e.State != bot.StateApproved {
		t.Errorf("head %s, approval for %s, state %s: the approval must be for the head GitLab shows", e.HeadSHA, e.Approvals[0].SHA, e.State)
	}
	if st := r.lastStatus(sha2); st.State != "success" {
		t.Errorf("status on the new head: %+v", st)
	}
}

func TestMergeWithoutApprovalIsBypass(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(8, sha1, "auth/a.go")
	r.hook(8, "open", sha1, "")
	r.settle()
	r.clock.Advance(time.Minute)
	r.gl.SetState("shop/api", 8, "merged")
	r.hook(8, "merge", sha1, "")
	r.settle()
	e := r.escalation(8)
	if e.State != bot.StateMerged || !e.Bypassed {
		t.Errorf("after an unapproved merge: %s bypassed=%v", e.State, e.Bypassed)
	}
}

func TestGitLabOutageDelaysStatusOnce(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(9, sha1, "auth/a.go")
	r.gl.FailPath("/statuses/", 6, 500)
	r.hook(9, "open", sha1, "")
	for range 8 {
		r.settle()
		r.clock.Advance(5 * time.Minute)
	}
	posts := 0
	for _, req := range r.gl.Requests() {
		if req.Method == http.MethodPost && strings.Contains(req.Path, "/statuses/") {
			posts++
		}
	}
	if got := r.statuses(sha1); len(got) != 1 || !strings.HasPrefix(got[0], "pending") {
		t.Errorf("statuses after the outage %v, want one pending", got)
	}
	if posts != 7 {
		t.Errorf("%d status POSTs, want 6 failed and 1 delivered (no hidden client retries)", posts)
	}
	if n := len(r.gl.Notes("shop/api", 9)); n != 1 {
		t.Errorf("%d notes, want 1", n)
	}
}

func TestExternalStatusCheckMode(t *testing.T) {
	r := newRig(t, "external_status_check")
	r.addMR(4, sha1, "auth/a.go")
	r.addMR(10, sha1, "README.md")
	post := func(iid int64, secret string) int {
		body := mrHookJSON(iid, "update", sha1, r.clock.Now())
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(body)
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/gitlab/status-check", bytes.NewReader(body))
		req.Header.Set("X-Gitlab-Signature", hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(4, "wrong secret"); code != 401 {
		t.Errorf("bad HMAC answered %d, want 401", code)
	}
	if code := post(4, string(testSecret)); code != 200 {
		t.Fatalf("status check answered %d", code)
	}
	if code := post(10, string(testSecret)); code != 200 {
		t.Fatalf("status check answered %d", code)
	}
	r.settle()
	got := map[int64]string{}
	for _, resp := range r.gl.StatusCheckResponses() {
		got[resp.IID] = resp.Status
	}
	if got[4] != "pending" || got[10] != "passed" {
		t.Errorf("status check responses %v, want !4 pending (escalated) and !10 passed (no tier)", got)
	}
	if n := len(r.gl.Statuses("shop/api", sha1)); n != 0 {
		t.Errorf("external mode set %d commit statuses", n)
	}
	// Approve: the check passes.
	r.comment(4, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.comment(4, "bob", "/threatgate approve")
	r.settle()
	resps := r.gl.StatusCheckResponses()
	if last := resps[len(resps)-1]; last.IID != 4 || last.Status != "passed" {
		t.Errorf("after approval the check is %+v", last)
	}
}

func TestManyConcurrentEventsNoneLost(t *testing.T) {
	r := newRig(t, "status")
	const mrs, perMR = 500, 10
	for i := range mrs {
		path := "docs/readme.md"
		if i%2 == 0 {
			path = "auth/x.go"
		}
		r.addMR(int64(100+i), fmt.Sprintf("%040d", 100+i), path)
	}
	var wg sync.WaitGroup
	codes := make(chan int, mrs*perMR)
	sem := make(chan struct{}, 64)
	for i := range mrs * perMR {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			iid := int64(100 + i%mrs)
			body := mrHookJSON(iid, "update", fmt.Sprintf("%040d", iid), r.clock.Now())
			req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/gitlab", bytes.NewReader(body))
			req.Header.Set("X-Gitlab-Event", EventMergeRequest)
			req.Header.Set("X-Gitlab-Token", string(testSecret))
			req.Header.Set("X-Gitlab-Event-UUID", fmt.Sprintf("load-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == 200 {
			ok++
		}
	}
	if ok != mrs*perMR {
		t.Fatalf("%d of %d webhooks acknowledged", ok, mrs*perMR)
	}
	depth, _ := r.db.InboxDepth(context.Background())
	if depth != mrs*perMR {
		t.Fatalf("inbox holds %d, want every acknowledged webhook (%d)", depth, mrs*perMR)
	}
	processed := 0
	r.worker.OnProcessed = func(string, time.Duration, error) { processed++ }
	r.settle()
	if depth, _ := r.db.InboxDepth(context.Background()); depth != 0 || processed != mrs*perMR {
		t.Fatalf("processed %d, %d left in the inbox", processed, depth)
	}
	all, _ := r.db.List(context.Background())
	if len(all) != mrs/2 {
		t.Errorf("%d escalations, want %d (the auth MRs)", len(all), mrs/2)
	}
}

func TestCommentDecisionsAreForWhatTheirAuthorSaw(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(20, sha1, "auth/a.go")
	r.hook(20, "open", sha1, "")
	r.comment(20, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.settle()
	// alice reviewed sha1 and approves; a second later ann pushes sha2,
	// before the comment is processed. The hook claims alice saw sha2:
	// the MR's versions in GitLab say otherwise.
	r.clock.Advance(time.Minute)
	id := r.gl.AddMRNote("shop/api", 20, gitlabtest.Note{Body: "/threatgate approve", Author: "alice"})
	r.clock.Advance(time.Second)
	r.gl.PushCommit("shop/api", 20, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+evil()\n"})
	at := r.clock.Now()
	r.noteHook(20, "alice", "/threatgate approve", id, sha2, &at)
	r.settle()
	if e := r.escalation(20); e.State == bot.StateApproved || len(e.Approvals) != 0 {
		t.Fatalf("an approval of %s counted for %s: %s %+v", sha1, sha2, e.State, e.Approvals)
	}
	if notes := r.gl.Notes("shop/api", 20); !containsAny(notes, "moved from 11111111 to 22222222") {
		t.Errorf("alice was not told why: %q", notes)
	}
	// An old comment resent later does not approve either.
	r.clock.Advance(time.Minute)
	r.writeNote(20, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", CreatedAt: r.clock.Now().Add(-time.Hour)})
	r.settle()
	if e := r.escalation(20); len(e.Approvals) != 0 {
		t.Errorf("a comment an hour old approved: %+v", e.Approvals)
	}
	if notes := r.gl.Notes("shop/api", 20); !containsAny(notes, "before it reached threatgate") {
		t.Errorf("alice was not told the comment is too old: %q", notes)
	}
	// A fresh approval of the head counts; the same note delivered again
	// (a new delivery id) runs once and is answered once.
	id = r.comment(20, "alice", "/threatgate approve")
	at = r.clock.Now()
	r.noteHook(20, "alice", "/threatgate approve", id, sha2, &at)
	r.settle()
	if e := r.escalation(20); e.State != bot.StateApproved || len(e.Approvals) != 1 || e.Approvals[0].SHA != sha2 {
		t.Errorf("fresh approval: %s %+v", e.State, e.Approvals)
	}
	if n := countPrefix(r.gl.Notes("shop/api", 20), "@alice "); n != 3 {
		t.Errorf("%d answers to alice, want 3 (two refusals, one approval): %q", n, r.gl.Notes("shop/api", 20))
	}
}

func countPrefix(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func TestCommentsSpeakForTheirOwnMR(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(30, sha1, "auth/a.go")
	r.addMR(31, sha1, "auth/b.go")
	r.hook(30, "open", sha1, "")
	r.hook(31, "open", sha1, "")
	r.settle()
	r.comment(31, "eve", "/threatgate status ESC-1")
	r.settle()
	notes := r.gl.Notes("shop/api", 31)
	if containsAny(notes, "shop/api!30") || !containsAny(notes, "not this merge request's escalation") {
		t.Errorf("another MR's escalation was shown or no refusal: %q", notes)
	}
	// threatgate's own notes quote commands; they are never run.
	before := len(r.gl.Notes("shop/api", 31))
	r.comment(31, gitlabtest.DefaultBotUser, "@eve try /threatgate help\n\n<!-- threatgate:effect=x -->")
	r.settle()
	if n := len(r.gl.Notes("shop/api", 31)); n != before+1 {
		t.Errorf("threatgate answered its own note")
	}
}

func TestReconcileCatchesAMissedReopenAndARerunPipeline(t *testing.T) {
	r := newRig(t, "status")
	ctx := context.Background()
	r.addMR(40, sha1, "auth/a.go")
	r.hook(40, "open", sha1, "")
	r.settle()
	r.clock.Advance(time.Minute)
	r.gl.SetState("shop/api", 40, "closed")
	r.hook(40, "close", sha1, "")
	r.settle()
	if e := r.escalation(40); e.State != bot.StateWithdrawn {
		t.Fatalf("after close: %s", e.State)
	}
	// Reopened and pushed, both webhooks lost.
	r.clock.Advance(time.Minute)
	r.gl.SetState("shop/api", 40, "opened")
	r.gl.PushCommit("shop/api", 40, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.gl.SetHeadPipeline("shop/api", 40, 900, "")
	r.worker.Reconcile(ctx)
	r.settle()
	if e := r.escalation(40); e.State == bot.StateWithdrawn || e.HeadSHA != sha2 {
		t.Fatalf("after reconcile: %s at %s", e.State, e.HeadSHA)
	}
	if st := r.lastStatus(sha2); st.State != "pending" || st.PipelineID != 900 {
		t.Fatalf("status on the new head: %+v", st)
	}
	// Someone re-runs the pipeline: a new head pipeline on the same commit
	// starts without the gate, and reconcile puts it back in.
	r.gl.SetHeadPipeline("shop/api", 40, 901, "")
	r.worker.Reconcile(ctx)
	r.settle()
	if st := r.lastStatus(sha2); st.State != "pending" || st.PipelineID != 901 {
		t.Errorf("status after a re-run pipeline: %+v, want pending in pipeline 901", st)
	}
}

func TestAuthFailuresDoNotLoseWebhooks(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(50, sha1, "auth/a.go")
	r.gl.FailPath("/merge_requests/50", 3, 401)
	r.hook(50, "open", sha1, "")
	r.settle()
	if d, _ := r.db.InboxDepth(context.Background()); d != 1 {
		t.Fatalf("inbox depth %d after a 401: the webhook must wait, not vanish", d)
	}
	for range 5 {
		r.clock.Advance(10 * time.Minute)
		r.settle()
	}
	if e := r.escalation(50); e.Tier != "T2" {
		t.Errorf("escalation %+v", e)
	}
}

func TestCommentAnswersSurviveAnOutage(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(60, sha1, "auth/a.go")
	r.hook(60, "open", sha1, "")
	r.settle()
	before := len(r.gl.Notes("shop/api", 60))
	r.gl.FailAfter(http.MethodPost, "/notes", 1, 502) // stored, but the answer is lost on its way back
	r.gl.FailPath("/notes", 2, 500)
	r.comment(60, "ann", "/threatgate status")
	for range 6 {
		r.settle()
		r.clock.Advance(5 * time.Minute)
	}
	notes := r.gl.Notes("shop/api", 60)
	answers := 0
	for _, n := range notes[before:] {
		if strings.Contains(n, "@ann ESC-1") {
			answers++
		}
	}
	if answers != 1 {
		t.Errorf("%d answers to the comment, want exactly 1: %q", answers, notes[before:])
	}
}

package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// These tests drive MR-comment commands end to end (Note Hook over HTTP,
// the real store, engine, worker and dispatcher, the real GitLab client,
// the fake GitLab) and check that who wrote a comment, what it says and
// when come from GitLab's API, never from the hook.

// readyForReview opens an escalation on MR iid at sha1 with every
// artifact in, so that only an appsec approval is missing, and moves the
// clock on a minute.
func (r *rig) readyForReview(iid int64) {
	r.t.Helper()
	r.addMR(iid, sha1, "auth/a.go")
	r.hook(iid, "open", sha1, "")
	r.comment(iid, "ann", "/threatgate artifact threat-model https://wiki/tm")
	r.settle()
	if e := r.escalation(iid); e.State != bot.StateInReview {
		r.t.Fatalf("!%d is %s, want in_review", iid, e.State)
	}
	r.clock.Advance(time.Minute)
}

// approvalEvents returns the approval events recorded for MR iid.
func (r *rig) approvalEvents(iid int64) []bot.Event {
	r.t.Helper()
	evs, err := r.db.Events(context.Background(), r.escalation(iid).ID)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []bot.Event
	for _, e := range evs {
		if e.Kind == bot.EventApproved {
			out = append(out, e)
		}
	}
	return out
}

// answers returns threatgate's notes on MR iid, oldest first.
func (r *rig) answers(iid int64) []string {
	var out []string
	for _, n := range r.gl.Notes("shop/api", iid) {
		if strings.Contains(n, "<!-- threatgate:effect=") {
			out = append(out, n)
		}
	}
	return out
}

// answerWith returns the answer on MR iid that contains sub, failing the
// test when there is none.
func (r *rig) answerWith(iid int64, sub string) string {
	r.t.Helper()
	for _, a := range r.answers(iid) {
		if strings.Contains(a, sub) {
			return a
		}
	}
	r.t.Fatalf("no answer on !%d says %q; answers: %q", iid, sub, r.answers(iid))
	return ""
}

// notApproved fails the test when MR iid's escalation counts an approval
// or its gate is green.
func (r *rig) notApproved(iid int64) {
	r.t.Helper()
	if evs := r.approvalEvents(iid); len(evs) != 0 {
		r.t.Errorf("approval events: %+v, want none", evs)
	}
	e := r.escalation(iid)
	if e.State == bot.StateApproved {
		r.t.Errorf("!%d is approved", iid)
	}
	if st := r.lastStatus(e.HeadSHA); st.State == "success" {
		r.t.Errorf("the gate is green: %+v", st)
	}
}

// mentions finds what GitLab would take for a reference in a note.
var mentions = regexp.MustCompile(`(^|[^A-Za-z0-9_])@[A-Za-z0-9_.-]+`)

// (a) A forged hook for a note GitLab does not have runs nothing.
func TestForgedNoteHookForAMissingNoteRunsNothing(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	// The webhook secret is known to project maintainers: the hook claims
	// alice approved, with no created_at and no last_commit.
	r.noteHook(12, "alice", "/threatgate approve", 424242, "", nil)
	r.settle()
	r.notApproved(12)
	a := r.answerWith(12, "GitLab has no such comment on this merge request")
	if m := mentions.FindString(a); m != "" {
		t.Errorf("the refusal mentions %q; the hook's username is only a claim: %q", m, a)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "GitLab has no such note") || !strings.Contains(logs, "hook_username=alice") || !strings.Contains(logs, "note_id=424242") {
		t.Errorf("no warning naming the note and the claimed user:\n%s", logs)
	}
	// Delivered again: still one answer.
	r.noteHook(12, "alice", "/threatgate approve", 424242, "", nil)
	r.settle()
	if n := len(r.answers(12)); n != 3 { // the opening note, the artifact's answer and this refusal
		t.Errorf("%d answers, want 3: %q", n, r.answers(12))
	}
}

// (b) A forged hook for a real note runs as the note's author in GitLab.
func TestForgedNoteHookRunsAsTheNotesAuthor(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	id := r.gl.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "/threatgate approve", Author: "mallory"})
	at := r.clock.Now()
	r.noteHook(12, "alice", "/threatgate approve", id, sha1, &at)
	r.settle()
	r.notApproved(12)
	a := r.answerWith(12, "not in the policy's people")
	if !strings.HasPrefix(a, "@mallory ") || !strings.Contains(a, "gitlab:mallory") {
		t.Errorf("the answer is not for mallory, who wrote the note: %q", a)
	}
	if strings.Contains(strings.Join(r.answers(12), "\n"), "@alice") {
		t.Errorf("alice was mentioned: %q", r.answers(12))
	}
	wantLog(t, r.logs.String(), "comment command refused", "hook_username=alice", "username=mallory", "user_id=666")

	// The same with a real approver: bob's note, claimed by alice, is
	// bob's approval.
	r.readyForReview(13)
	id = r.gl.AddMRNote("shop/api", 13, gitlabtest.Note{Body: "/threatgate approve", Author: "bob"})
	at = r.clock.Now()
	r.noteHook(13, "alice", "/threatgate approve", id, sha1, &at)
	r.settle()
	if e := r.escalation(13); e.State != bot.StateApproved || len(e.Approvals) != 1 || e.Approvals[0].By != "bob" {
		t.Errorf("!13: %s %+v, want approved by bob", e.State, e.Approvals)
	}
}

// (c) A recycled or renamed username carries nobody's rights.
func TestRecycledUsernamesCarryNoRights(t *testing.T) {
	t.Run("pinned gitlab_id", func(t *testing.T) {
		r := newRig(t, "status")
		r.readyForReview(12)
		// carol (id 203, pinned in the policy) renamed her account; a new
		// account, id 999, took the name.
		r.gl.RenameUser("carol", "carol-old")
		r.gl.SetUser("carol", 999)
		id := r.comment(12, "carol", "/threatgate approve")
		r.settle()
		r.notApproved(12)
		a := r.answerWith(12, "GitLab user id 999")
		if !strings.HasPrefix(a, "@carol ") || !strings.Contains(a, "GitLab user id 203") || !strings.Contains(a, "reused username") {
			t.Errorf("answer %q, want it to name both ids and why", a)
		}
		if n := userLookups(r, "carol"); n != 0 {
			t.Errorf("a pinned gitlab_id was looked up %d times", n)
		}
		wantLog(t, r.logs.String(), "level=WARN", "project=shop/api", "mr_iid=12", fmt.Sprintf("note_id=%d", id),
			"hook_username=carol", "username=carol", "user_id=999", "person_gitlab_id=203")
	})
	t.Run("username resolved through the API", func(t *testing.T) {
		r := newRig(t, "status")
		r.readyForReview(12)
		r.readyForReview(13)
		r.comment(12, "alice", "/threatgate approve")
		r.settle()
		if e := r.escalation(12); e.State != bot.StateApproved {
			t.Fatalf("alice's own approval: %s", e.State)
		}
		// alice renames her account; someone else registers "alice".
		r.gl.RenameUser("alice", "alice-old")
		r.gl.SetUser("alice", 301)
		r.clock.Advance(time.Minute)
		id := r.comment(13, "alice", "/threatgate approve")
		r.settle()
		r.notApproved(13)
		a := r.answerWith(13, "GitLab user id 301")
		if !strings.HasPrefix(a, "@alice ") || !strings.Contains(a, "GitLab user id 201") {
			t.Errorf("answer %q, want it to name both ids", a)
		}
		wantLog(t, r.logs.String(), "level=WARN", fmt.Sprintf("note_id=%d", id), "username=alice", "user_id=301", "person_gitlab_id=201", "pinned=false")
	})
}

// userLookups counts the requests for the id of username.
func userLookups(r *rig, username string) int {
	n := 0
	for _, req := range r.gl.Requests() {
		if strings.HasSuffix(req.Path, "/users") && strings.Contains(req.RawQuery, "username="+username) {
			n++
		}
	}
	return n
}

func wantLog(t *testing.T, logs string, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return
		}
	}
	t.Errorf("no log line has all of %q:\n%s", parts, logs)
}

// (d) When a comment was written is what GitLab stored.
func TestCommentTimesComeFromTheAPI(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	now := r.clock.Now()
	// A day in the future (the hook carries the same date).
	r.writeNote(12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", CreatedAt: now.Add(24 * time.Hour)})
	r.settle()
	r.notApproved(12)
	if a := r.answerWith(12, "after threatgate's clock"); !strings.HasPrefix(a, "@alice ") || !strings.Contains(a, now.Add(24*time.Hour).Format(time.RFC3339)) {
		t.Errorf("answer %q, want it for alice and naming the date", a)
	}
	// No created_at in GitLab's answer, though the hook gives one.
	r.writeNote(12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", NoCreatedAt: true})
	r.settle()
	r.notApproved(12)
	r.answerWith(12, "gives no created_at")
	// A created_at GitLab's answer has in a form nobody can read.
	r.writeNote(12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", RawCreatedAt: "yesterday"})
	r.settle()
	r.notApproved(12)
	r.answerWith(12, `a time threatgate cannot read ("yesterday")`)
	// An hour-old note whose hook claims it was written just now.
	id := r.gl.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", CreatedAt: now.Add(-time.Hour)})
	r.noteHook(12, "alice", "/threatgate approve", id, sha1, &now)
	r.settle()
	r.notApproved(12)
	r.answerWith(12, "more than 15m0s before it reached threatgate")
	// Clocks differ a little: 30 seconds ahead is accepted.
	r.writeNote(12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", CreatedAt: now.Add(30 * time.Second)})
	r.settle()
	if e := r.escalation(12); e.State != bot.StateApproved {
		t.Errorf("a note 30s ahead of the clock: %s, want approved", e.State)
	}
}

// (e) The head a commenter saw is the MR's version from before the note.
func TestApprovalNeedsTheVersionTheCommenterSaw(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	// alice writes at 9:01; ann pushes at 9:01:01; the hook claims alice
	// saw the new head.
	id := r.gl.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice"})
	written := r.clock.Now()
	r.clock.Advance(time.Second)
	r.gl.PushCommit("shop/api", 12, sha2, gitlabtest.Diff{OldPath: "auth/a.go", NewPath: "auth/a.go", Diff: "@@ -1 +1 @@\n-a\n+b\n"})
	r.noteHook(12, "alice", "/threatgate approve", id, sha2, &written)
	r.settle()
	r.notApproved(12)
	r.answerWith(12, "moved from 11111111 to 22222222 since your comment")

	// A note from before the MR's first version saw none of it.
	r.readyForReview(13)
	r.writeNote(13, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", CreatedAt: r.clock.Now().Add(-5 * time.Minute)})
	r.settle()
	r.notApproved(13)
	r.answerWith(13, "GitLab shows no version of this merge request from before your comment")
}

// (f) A genuine note at the current head still approves.
func TestGenuineCommentApproves(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	r.comment(12, "alice", "LGTM\n/threatgate approve reviewed the rotation")
	r.settle()
	e := r.escalation(12)
	if e.State != bot.StateApproved || len(e.Approvals) != 1 || e.Approvals[0].By != "alice" || e.Approvals[0].SHA != sha1 {
		t.Fatalf("after alice's approval: %s %+v", e.State, e.Approvals)
	}
	if st := r.lastStatus(sha1); st.State != "success" {
		t.Errorf("gate: %+v, want success", st)
	}
	a := r.answerWith(12, "Approval from alice")
	if !strings.HasPrefix(a, "@alice Approval from alice") {
		t.Errorf("answer %q, want it to start with a real mention of alice", a)
	}
	if got := mentions.FindAllString(a, -1); len(got) != 1 {
		t.Errorf("mentions in the answer: %q, want only @alice", got)
	}

	// carol's id is pinned: her genuine note approves without a lookup.
	r.readyForReview(13)
	r.comment(13, "carol", "/threatgate approve")
	r.settle()
	if e := r.escalation(13); e.State != bot.StateApproved || e.Approvals[0].By != "carol" {
		t.Errorf("carol's approval: %s %+v", e.State, e.Approvals)
	}
	if n := userLookups(r, "carol"); n != 0 {
		t.Errorf("%d lookups of carol, whose id is pinned", n)
	}
}

func TestSystemNotesAreIgnored(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	before := len(r.answers(12))
	r.writeNote(12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", System: true})
	r.settle()
	r.notApproved(12)
	if n := len(r.answers(12)); n != before {
		t.Errorf("a system note was answered: %q", r.answers(12))
	}
}

func TestTheNoteInGitLabIsRunNotTheHooksText(t *testing.T) {
	r := newRig(t, "status")
	r.readyForReview(12)
	id := r.gl.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "/threatgate status", Author: "alice"})
	at := r.clock.Now()
	r.noteHook(12, "alice", "/threatgate approve", id, sha1, &at)
	r.settle()
	r.notApproved(12)
	if a := r.answerWith(12, "@alice "); !strings.Contains(a, "ESC-1") || strings.Contains(a, "Approval from") {
		t.Errorf("answer %q, want alice's status", a)
	}
	if !strings.Contains(r.logs.String(), "differs from the note in GitLab") {
		t.Errorf("the difference was not logged:\n%s", r.logs.String())
	}
	// A hook for an ordinary comment that claims a command runs nothing.
	id = r.gl.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "nice work", Author: "alice"})
	r.noteHook(12, "alice", "/threatgate approve", id, sha1, &at)
	r.settle()
	r.notApproved(12)
}

// fetchOnly is a Fetcher that cannot read notes, as the demo's simulator.
type fetchOnly struct{ Fetcher }

func TestCommentCommandsNeedTheAPI(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fetch func(r *rig) Fetcher
	}{
		{"dry run", func(*rig) Fetcher { return nil }},
		{"a Fetcher that reads no notes", func(r *rig) Fetcher { return fetchOnly{r.client} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, "status")
			r.readyForReview(12)
			r.worker.Fetch = tt.fetch(r)
			r.comment(12, "alice", "/threatgate approve")
			r.settle()
			r.notApproved(12)
			r.answerWith(12, "MR-comment commands need the GitLab API")
			if !strings.Contains(r.logs.String(), "MR-comment commands need the GitLab API") {
				t.Errorf("no log line:\n%s", r.logs.String())
			}
			r.comment(12, "alice", "/threatgate help")
			r.settle()
			if a := r.answerWith(12, "/threatgate approve"); strings.HasPrefix(a, "@") {
				t.Errorf("help answer %q mentions someone on the hook's word", a)
			}
			// With answers off (serve's dry run) nothing is posted.
			r.worker.Answer = false
			before := len(r.answers(12))
			r.comment(12, "alice", "/threatgate approve")
			r.settle()
			if n := len(r.answers(12)); n != before {
				t.Errorf("answered with Answer off")
			}
		})
	}
}

// Text from outside reaches GitLab without mentions or quick actions; the
// answer to a comment mentions its author only.
func TestNotesReachGitLabNeutralised(t *testing.T) {
	r := newRig(t, "status")
	r.addMR(12, sha1, "README.md")
	ctx := context.Background()
	text := "From the MR: thanks @all and @shop/security\n/approve\n  /merge\nmail ann@example.com"
	// The first POST is stored but its answer lost: the retry finds the
	// marker and posts nothing.
	r.gl.FailAfter(http.MethodPost, "/notes", 1, http.StatusBadGateway)
	if _, err := r.db.Commit(ctx, &bot.Commit{Effects: []bot.Effect{{Kind: bot.EffectMRNote, Project: "shop/api", MRIID: 12, Text: text}}, Key: "neutral-1", At: r.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.settle()
		r.clock.Advance(5 * time.Minute)
	}
	notes := r.gl.Notes("shop/api", 12)
	if len(notes) != 1 {
		t.Fatalf("notes: %q, want exactly one", notes)
	}
	const z = "\u200d"
	for _, want := range []string{"thanks @" + z + "all and @" + z + "shop/security\n" + z + "/approve\n  " + z + "/merge\nmail ann@example.com", "<!-- threatgate:effect="} {
		if !strings.Contains(notes[0], want) {
			t.Errorf("note %q, want it to contain %q", notes[0], want)
		}
	}
	if m := mentions.FindAllString(notes[0], -1); len(m) != 0 {
		t.Errorf("the note mentions %q", m)
	}
	for _, line := range strings.Split(notes[0], "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "/") {
			t.Errorf("line %q is a quick action", line)
		}
	}
}

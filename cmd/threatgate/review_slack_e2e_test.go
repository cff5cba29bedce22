package main

// Attacker's review of the Slack surface, end to end through serve's
// wiring. Each test fails on the code as reviewed and says what the safe
// behaviour is.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/adapters/slack"
)

// rvReplyAt posts a thread reply that Slack stamps as written at ts.
func (r *slackRig) rvReplyAt(eventID, user, thread, text string, written time.Time) {
	r.t.Helper()
	ts := fmt.Sprintf("%d.%06d", written.Unix(), written.Nanosecond()/1000)
	raw, _ := json.Marshal(map[string]any{"type": "event_callback", "team_id": slackTeam, "event_id": eventID,
		"event": map[string]any{"type": "message", "user": user, "text": text, "channel": "C0ESC", "ts": ts, "thread_ts": thread}})
	if resp, b := r.signed(slack.PathEvents, string(raw), nil); resp.StatusCode != 200 {
		r.t.Fatalf("event: %d %s", resp.StatusCode, b)
	}
	r.app.Drain()
}

// TestReviewSlackE2EThreadApprovalTurnsALaterPushGreen: the gate's
// promise is that a head gets a green gate only after approvals given on
// that head. alice reviews head A and answers in the escalation's thread
// "@threatgate approve"; the MR's author pushes head B (a new secret-
// handling change) after alice wrote it and before Slack's event is handled
// (a slow answer and Slack's retry, a queue in Socket Mode, or plain
// luck); the thread reply carries no head, so alice's approval is recorded
// for B and the GitLab gate on B turns green. An MR comment written before
// a push is bound to the version before it (docs/SECURITY.md); a Slack
// reply, whose time Slack signs, is not.
//
// Safe behaviour: the reply is refused (the head moved since it was
// written), and the gate on B stays pending.
func TestReviewSlackE2EThreadApprovalTurnsALaterPushGreen(t *testing.T) {
	r := newSlackRig(t)
	r.mr(1, shaA, "src/auth/login.go", "token := mint()")
	thread := r.s.slackThread(t, "ESC-1")
	r.reply("EvTM", "U0ANN", thread.TS, "threat-model: https://wiki.example.com/tm/1")
	r.settle()
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") {
		t.Fatalf("gate on A %q, want pending", g)
	}
	// alice writes her approval of A.
	written := r.clock.Now()
	// The author pushes B right after.
	r.clock.Advance(10 * time.Second)
	r.gl.Push("shop/api", 1, gitlabtest.Commit{ID: shaB, AuthorEmail: "ann@example.com"},
		gitlabtest.Diff{OldPath: "src/auth/login.go", NewPath: "src/auth/login.go", Diff: "@@ -1 +1,3 @@\n x\n+token := mint()\n+session.Skip = true\n"})
	r.hook(1, "update")
	if e := r.esc(1); e.HeadSHA != shaB {
		t.Fatalf("head after the push: %s", e.HeadSHA)
	}
	// Slack delivers alice's reply now.
	r.rvReplyAt("EvAp", "U0ALICE", thread.TS, "<@U0BOT> approve --check data-sensitivity=none looks good", written)
	r.settle()
	if g := r.gate(shaB); strings.HasPrefix(g, "success:") {
		t.Errorf("gate on B is %q: an approval written while the head was A (before B was pushed) turned B green", g)
	}
	for _, a := range r.esc(1).Approvals {
		if a.SHA == shaB {
			t.Errorf("approval recorded for B, a head pushed after alice wrote it: %+v", a)
		}
	}
}

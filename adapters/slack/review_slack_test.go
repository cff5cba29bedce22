package slack

// Attacker's review of the Slack surface. Each test below fails on the
// code as reviewed and says what the safe behaviour is.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

const rvHeadB = "bbbbbbb2222222222222222222222222222222bb"

// rvSlackTS writes t as a Slack message ts.
func rvSlackTS(t time.Time) string { return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000) }

// rvThreadMessage is a thread reply in ESC-1's thread whose Slack ts
// (when Slack says it was written) is ts.
func rvThreadMessage(eventID, user, text, ts string) string {
	raw, _ := json.Marshal(map[string]any{
		"type": "event_callback", "team_id": htTeam, "event_id": eventID, "event_time": 1700000000,
		"event": map[string]any{"type": "message", "user": user, "text": text, "channel": htChan, "channel_type": "channel",
			"ts": ts, "thread_ts": htThread},
	})
	return string(raw)
}

// rvPush moves ESC-1's MR to head sha, still touching auth code.
func (r *htRig) rvPush(t *testing.T, sha string) {
	t.Helper()
	_, err := r.Engine.Handle(context.Background(), bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: 12, PathWithNamespace: "shop/api", Title: "session rework", TargetBranch: "main", SHA: sha, UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "internal/auth/s.go", NewPath: "internal/auth/s.go"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReviewSlackThreadReplyApprovalBindsNoHead: an approval written as a
// reply in the escalation's thread carries no head (bot.Input.Head is
// empty), so it is counted for whatever head the MR has when the event is
// handled. Slack's signed event says when the reply was written (its ts);
// here alice wrote "@threatgate approve" while the card showed head A, the
// author then pushed head B, and the event (delivered late, or retried by
// Slack after a slow answer) approved B, code alice never saw. Also, a
// reply written days (years) ago is accepted as fresh, where an MR comment
// older than 15 minutes is refused (bot.MaxCommandAge).
//
// Safe behaviour: a head-bound command from a thread reply is bound to the
// head the escalation had when Slack says the message was written (or is
// refused when the head moved after it, or when it is too old), as the
// GitLab surface binds comments to the MR version before the note.
func TestReviewSlackThreadReplyApprovalBindsNoHead(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	ctx := context.Background()
	if got := answer(t, r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model https://wiki/tm"))); !strings.Contains(got, "added") {
		t.Fatalf("artifact: %q", got)
	}
	// alice writes her approval while the head is A...
	r.Clock.Advance(time.Minute)
	written := rvSlackTS(r.Clock.Now())
	// ...the author pushes B a minute later...
	r.Clock.Advance(time.Minute)
	r.rvPush(t, rvHeadB)
	esc, _ := r.DB.FindEscalation(ctx, "ESC-1")
	if esc.HeadSHA != rvHeadB {
		t.Fatalf("head after the push: %s", esc.HeadSHA)
	}
	// ...and Slack delivers alice's reply after the push.
	r.Clock.Advance(time.Minute)
	r.post(t, PathEvents, rvThreadMessage("EvHead1", "UALICE",
		"<@UBOT> approve --check data-sensitivity=none --check authz-reviewed=yes reviewed the session code", written))
	r.app.Drain()
	esc, _ = r.DB.FindEscalation(ctx, "ESC-1")
	for _, a := range esc.Approvals {
		if a.SHA == rvHeadB {
			t.Errorf("a thread reply written at head %s (before the push) approved head %s, pushed after it: %+v", shortHead(htHead), shortHead(rvHeadB), a)
		}
	}
	if esc.State == bot.StateApproved {
		t.Errorf("ESC-1 is approved on a head its approver never saw")
	}

	// A reply Slack stamps a year ago is taken as fresh too.
	r2 := newHTRig(t)
	r2.open(t)
	answer(t, r2.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model https://wiki/tm")))
	old := rvSlackTS(r2.Clock.Now().Add(-365 * 24 * time.Hour))
	r2.post(t, PathEvents, rvThreadMessage("EvOld1", "UALICE",
		"<@UBOT> approve --check data-sensitivity=none --check authz-reviewed=yes ok", old))
	r2.app.Drain()
	if esc, _ := r2.DB.FindEscalation(ctx, "ESC-1"); len(esc.Approvals) > 0 {
		t.Errorf("a thread reply written a year before it arrived approved ESC-1 (an MR comment older than %s is refused): %+v", bot.MaxCommandAge, esc.Approvals)
	}
}

// TestReviewSlackUnmappedUserReadsEscalations: docs/SECURITY.md says that
// anyone not in the policy's people may read help and nothing else, and
// docs/SLACK.md that an unmapped Slack user is told how to get mapped. Any
// member of the workspace (a guest, a contractor) who is in no
// people[].slack can nevertheless list every open escalation with
// /threatgate backlog, and read one in full (MR, title, signals and their
// evidence, authors) with /threatgate status, as a slash command or as a
// thread reply. The MRs under security review are exactly the ones an
// outsider should not learn about.
//
// Safe behaviour: an unmapped Slack user gets only help and the
// "not mapped" answer.
func TestReviewSlackUnmappedUserReadsEscalations(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	for _, text := range []string{"backlog", "status ESC-1"} {
		got := answer(t, r.post(t, PathCommands, command("UBOB", "/threatgate", text)))
		if strings.Contains(got, "ESC-1") || strings.Contains(got, "session rework") || strings.Contains(got, "shop/api") {
			t.Errorf("unmapped UBOB's /threatgate %s was answered with the escalation: %q", text, got)
		}
		if !strings.Contains(got, "not mapped") {
			t.Errorf("unmapped UBOB's /threatgate %s: want the not-mapped answer, got %q", text, got)
		}
	}
	// The same as a reply in the thread.
	r.post(t, PathEvents, threadMessage("EvS1", "UBOB", "<@UBOT> status"))
	r.app.Drain()
	for _, c := range r.slack.Calls("chat.postEphemeral") {
		if c.Form.Get("user") == "UBOB" && strings.Contains(c.Form.Get("text"), "session rework") {
			t.Errorf("unmapped UBOB was shown ESC-1 in the thread: %q", c.Form.Get("text"))
		}
	}
}

// rvFailingThreads is a store whose thread look-up fails (bbolt busy, a
// disk error): everything else works.
type rvFailingThreads struct {
	Store
	calls atomic.Int32
}

func (s *rvFailingThreads) EscalationOfThread(ctx context.Context, sink string, ref bot.MessageRef) (string, error) {
	s.calls.Add(1)
	return "", errors.New("store: timeout")
}

// TestReviewSlackThreadReplyLostOnStoreError: when the store cannot look
// up the thread of a reply, message() "forgets" the event id so that
// "Slack's retry of this event may succeed" — but the handler answers
// Slack 200 all the same, and Slack retries only what was not answered
// 2xx (Socket Mode acknowledges before handling). The reply (here an
// artifact) is acknowledged and lost, and its author is told nothing:
// "Nothing acknowledged is lost" (DESIGN.md 6) does not hold.
//
// Safe behaviour: an event whose handling failed for an internal reason is
// answered with a 5xx over HTTP (so that Slack retries it), or its author
// is told that nothing was recorded.
func TestReviewSlackThreadReplyLostOnStoreError(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	fs := &rvFailingThreads{Store: r.app.Store}
	r.app.Store = fs
	w := r.post(t, PathEvents, threadMessage("EvL1", "UANN", "threat-model: https://wiki.example.com/tm"))
	r.app.Drain()
	if fs.calls.Load() == 0 {
		t.Fatalf("the thread was not looked up")
	}
	told := false
	for _, c := range r.slack.Calls("chat.postEphemeral") {
		if c.Form.Get("user") == "UANN" {
			told = true
		}
	}
	if w.Code/100 == 2 && !told {
		t.Errorf("the reply was answered %d (Slack will not retry it) and its author was told nothing: the artifact is lost", w.Code)
	}
}

// rvCountingBody counts what is read of a request body.
type rvCountingBody struct {
	r io.Reader
	n atomic.Int64
}

func (b *rvCountingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}
func (b *rvCountingBody) Close() error { return nil }

// TestReviewSlackUnsignedBodyIsReadInFull: a request without a timestamp
// or signature, or with one hours old, from anyone who can reach the
// endpoint, has its body read in full (up to 1 MiB) and held in memory
// before the cheap header checks refuse it. An outsider can make the
// server read and buffer a megabyte per request, many at once, with no
// secret at all. DESIGN.md 6: forged, replayed or oversized requests are
// refused "before any parsing of their body beyond what verification
// needs", and verification of a missing or stale timestamp needs none.
//
// Safe behaviour: the timestamp and the presence/shape of the signature
// header are checked before the body is read.
func TestReviewSlackUnsignedBodyIsReadInFull(t *testing.T) {
	r := newHTRig(t)
	for _, tc := range []struct {
		name string
		ts   string
		sig  string
	}{
		{"no headers", "", ""},
		{"a day old", fmt.Sprint(r.Clock.Now().Add(-24 * time.Hour).Unix()), "v0=00"},
		{"no signature", fmt.Sprint(r.Clock.Now().Unix()), ""},
	} {
		body := &rvCountingBody{r: strings.NewReader(strings.Repeat("a", maxRequest))}
		req := httptest.NewRequest(http.MethodPost, PathEvents, nil)
		req.Body = body
		if tc.ts != "" {
			req.Header.Set("X-Slack-Request-Timestamp", tc.ts)
		}
		if tc.sig != "" {
			req.Header.Set("X-Slack-Signature", tc.sig)
		}
		w := httptest.NewRecorder()
		r.h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", tc.name, w.Code)
		}
		if n := body.n.Load(); n > 64<<10 {
			t.Errorf("%s: %d bytes of an unverifiable request's body were read before it was refused", tc.name, n)
		}
	}
}

// TestReviewSlackThreadArtifactKeepsControlCharacters: every command is
// refused when it holds a control character ("they would survive into
// logs and the audit trail", bot.parse), but an artifact handed in as a
// thread reply ("threat-model: ...") is read by ParseThreadReply without
// going through that check, and so is a file's name; both are recorded in
// the audit log as sent (here an ANSI escape sequence and a carriage
// return that rewrite a terminal line of whoever reads the log or an
// export).
//
// Safe behaviour: the reply is refused (or the control characters are
// dropped), as the same text typed as /threatgate artifact is.
func TestReviewSlackThreadArtifactKeepsControlCharacters(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	const evil = "https://wiki.example.com/tm\r\x1b[2K\x1b[32mapproved by security-leads\x1b[0m"
	// The slash command refuses it.
	if got := answer(t, r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model "+evil))); !strings.Contains(got, "control character") {
		t.Fatalf("slash artifact with control characters: %q", got)
	}
	check := func(what string) {
		t.Helper()
		r.app.Drain()
		esc, _ := r.DB.FindEscalation(context.Background(), "ESC-1")
		for _, a := range esc.Artifacts {
			if strings.ContainsAny(a.Ref, "\r\x1b") {
				t.Errorf("%s: artifact recorded with control characters: %q", what, a.Ref)
			}
		}
	}
	r.post(t, PathEvents, threadMessage("EvCC1", "UANN", "threat-model: "+evil))
	check("thread reply")
	raw, _ := json.Marshal(map[string]any{
		"type": "event_callback", "team_id": htTeam, "event_id": "EvCC2",
		"event": map[string]any{"type": "message", "subtype": "file_share", "user": "UANN", "text": "threat-model", "channel": htChan,
			"ts": "1700000007.000100", "thread_ts": htThread,
			"files": []map[string]any{{"id": "F2", "name": "tm.pdf", "title": "tm.pdf\r\x1b[2Kapproved", "permalink": "https://acme.slack.com/files/UANN/F2/tm.pdf"}}},
	})
	r.post(t, PathEvents, string(raw))
	check("file upload")
}

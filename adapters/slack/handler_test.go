package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// htPolicy has a tier with an artifact and a checklist, an author (ann)
// and an approver (alice) mapped to Slack, and bob who is not.
const htPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    checklist: [data-sensitivity, authz-reviewed]
groups:
  appsec: {members: [alice, carol]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: UALICE, email: alice@example.com}
  - {gitlab: carol, slack: UCAROL, email: carol@example.com}
intake:
  - {id: summary, prompt: 'What is wrong?'}
  - {id: assets, prompt: 'What is at stake?'}
`

const (
	htSecret = bot.Secret("8f742231b10e8888abcd99yyyzzz85a5")
	htTeam   = "T0TEAM"
	htChan   = "C0ESC"
	htThread = "1700000000.000100"
	htHead   = "aaaaaaa1111111111111111111111111111111aa"
)

// htCall is one Web API call the fake Slack received.
type htCall struct {
	Method string // "views.open", "chat.postEphemeral", "response_url"
	Form   url.Values
	JSON   map[string]any
}

// htSlack is a fake Slack Web API that records every call.
type htSlack struct {
	mu    sync.Mutex
	calls []htCall
	srv   *httptest.Server
}

func newHTSlack(t testing.TB) *htSlack {
	f := &htSlack{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := htCall{Method: strings.TrimPrefix(r.URL.Path, "/")}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			json.Unmarshal(body, &c.JSON)
		} else {
			c.Form, _ = url.ParseQuery(string(body))
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch c.Method {
		case "views.open":
			io.WriteString(w, `{"ok":true,"view":{"id":"V1"}}`)
		case "chat.postEphemeral":
			io.WriteString(w, `{"ok":true,"message_ts":"1700000001.000200"}`)
		case "response":
			io.WriteString(w, `ok`)
		default:
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *htSlack) Calls(method string) []htCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []htCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// waitCalls waits until the fake has n calls of method, or fails.
func (f *htSlack) waitCalls(t *testing.T, method string, n int) []htCall {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cs := f.Calls(method); len(cs) >= n {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d %s calls, got %d; all calls: %+v", n, method, len(f.Calls(method)), f.calls)
		}
		f.mu.Lock()
		f.mu.Unlock()
		<-time.After(5 * time.Millisecond)
	}
}

type htRig struct {
	*testrig.Rig
	app   *App
	slack *htSlack
	h     http.Handler
}

func newHTRig(t testing.TB) *htRig {
	t.Helper()
	r := testrig.NewRig(t, htPolicy)
	f := newHTSlack(t)
	u, _ := url.Parse(f.srv.URL)
	app := NewApp(&App{
		Client: sl.New("xoxb-test", sl.OptionAPIURL(f.srv.URL+"/")),
		Engine: r.Engine, Store: r.DB, Clock: r.Clock,
		TeamID: htTeam, SigningSecret: htSecret, Channel: htChan, BotUserID: "UBOT",
		ResponseHosts: []string{"hooks.slack.com", u.Host},
	})
	t.Cleanup(app.Drain)
	return &htRig{Rig: r, app: app, slack: f, h: app.Handler()}
}

// open escalates an MR by ann touching auth code: ESC-1 at htHead, with
// its Slack thread at htThread.
func (r *htRig) open(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	_, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: &policies.MergeRequest{
		IID: 12, PathWithNamespace: "shop/api", Title: "session rework", TargetBranch: "main", SHA: htHead, UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "internal/auth/s.go", NewPath: "internal/auth/s.go"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DB.SetThreadRef(ctx, "ESC-1", SinkName, bot.MessageRef{Channel: htChan, TS: htThread}); err != nil {
		t.Fatal(err)
	}
}

// post sends body to path signed at the rig's clock (or as sign says).
func (r *htRig) post(t *testing.T, path string, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	ts, sig := Sign(htSecret, []byte(body), r.Clock.Now())
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	return w
}

func command(user, cmd, text string) string {
	return url.Values{"team_id": {htTeam}, "channel_id": {htChan}, "user_id": {user}, "command": {cmd}, "text": {text},
		"trigger_id": {"trig-" + user + "-" + text}, "response_url": {"https://hooks.slack.com/commands/T0TEAM/1/abc"}}.Encode()
}

func interaction(t *testing.T, payload map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"payload": {string(raw)}}.Encode()
}

func threadMessage(eventID, user, text string) string {
	raw, _ := json.Marshal(map[string]any{
		"type": "event_callback", "team_id": htTeam, "event_id": eventID, "event_time": 1700000000,
		"event": map[string]any{"type": "message", "user": user, "text": text, "channel": htChan, "channel_type": "channel",
			"ts": "1700000005.000" + eventID[len(eventID)-1:], "thread_ts": htThread},
	})
	return string(raw)
}

func answer(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var a ephemeral
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %q: %v", w.Body, err)
	}
	if a.ResponseType != "ephemeral" {
		t.Errorf("answer is %q, want ephemeral", a.ResponseType)
	}
	return a.Text
}

func (r *htRig) events(t *testing.T) int {
	t.Helper()
	n, err := r.DB.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHTTPRefusesUnverifiedRequests: an unsigned request, a wrong
// signature, a stale or future timestamp and a request from another
// workspace get 401, and nothing is stored or sent.
func TestHTTPRefusesUnverifiedRequests(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	before := r.events(t)
	body := command("UALICE", "/threatgate", "dissent ESC-1 forged")
	foreign := strings.Replace(body, "team_id="+htTeam, "team_id=T0OTHER", 1)
	for _, tc := range []struct {
		name string
		do   func() *httptest.ResponseRecorder
	}{
		{"unsigned", func() *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			r.h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, PathCommands, strings.NewReader(body)))
			return w
		}},
		{"wrong secret", func() *httptest.ResponseRecorder {
			ts, sig := Sign("another-secret", []byte(body), r.Clock.Now())
			return r.post(t, PathCommands, body, "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", sig)
		}},
		{"body changed after signing", func() *httptest.ResponseRecorder {
			ts, sig := Sign(htSecret, []byte(body), r.Clock.Now())
			return r.post(t, PathCommands, body+"x", "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", sig)
		}},
		{"stale", func() *httptest.ResponseRecorder {
			ts, sig := Sign(htSecret, []byte(body), r.Clock.Now().Add(-6*time.Minute))
			return r.post(t, PathCommands, body, "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", sig)
		}},
		{"future", func() *httptest.ResponseRecorder {
			ts, sig := Sign(htSecret, []byte(body), r.Clock.Now().Add(6*time.Minute))
			return r.post(t, PathCommands, body, "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", sig)
		}},
		{"foreign team command", func() *httptest.ResponseRecorder { return r.post(t, PathCommands, foreign) }},
		{"foreign team event", func() *httptest.ResponseRecorder {
			return r.post(t, PathEvents, strings.Replace(threadMessage("Ev1", "UALICE", "/threatgate dissent no"), htTeam, "T0OTHER", 1))
		}},
		{"foreign team interaction", func() *httptest.ResponseRecorder {
			return r.post(t, PathInteractions, interaction(t, map[string]any{"type": "block_actions", "team": map[string]any{"id": "T0OTHER"},
				"user": map[string]any{"id": "UALICE"}, "trigger_id": "x", "actions": []map[string]any{{"action_id": "threatgate:approve", "value": "ESC-1"}}}))
		}},
	} {
		if w := tc.do(); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401 (%s)", tc.name, w.Code, w.Body)
		}
	}
	r.app.Drain()
	if after := r.events(t); after != before {
		t.Errorf("refused requests stored %d events", after-before)
	}
	if len(r.slack.calls) != 0 {
		t.Errorf("refused requests made Slack calls: %+v", r.slack.calls)
	}
	// The same request, correctly signed, is accepted.
	if got := answer(t, r.post(t, PathCommands, body)); !strings.Contains(got, "Dissent recorded") {
		t.Errorf("signed request answered %q", got)
	}
}

// TestSlashApproveByAuthorIsRefused: the MR's author cannot approve; the
// refusal is explained to them alone and nothing is recorded.
func TestSlashApproveByAuthorIsRefused(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	if got := answer(t, r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model https://wiki/tm"))); !strings.Contains(got, "threat-model added") {
		t.Fatalf("artifact: %q", got)
	}
	before := r.events(t)
	got := answer(t, r.post(t, PathCommands, command("UANN", "/approve", "ESC-1 --check data-sensitivity=none --check authz-reviewed=yes lgtm")))
	if !strings.Contains(got, "you wrote") && !strings.Contains(got, "author") {
		t.Errorf("author's /approve answered %q, want a refusal naming why", got)
	}
	if after := r.events(t); after != before {
		t.Errorf("a refused approval stored %d events", after-before)
	}
	// An unmapped user is told how to get mapped; nothing is recorded.
	got = answer(t, r.post(t, PathCommands, command("UBOB", "/approve", "ESC-1 --check data-sensitivity=none --check authz-reviewed=yes")))
	if !strings.Contains(got, "not mapped") || !strings.Contains(got, "slack: UBOB") {
		t.Errorf("unmapped user answered %q", got)
	}
	if after := r.events(t); after != before {
		t.Errorf("an unmapped user's command stored %d events", after-before)
	}
	// help needs nobody.
	if got := answer(t, r.post(t, PathCommands, command("UBOB", "/threatgate", "help"))); !strings.Contains(got, "/approve") {
		t.Errorf("help: %q", got)
	}
}

// TestApproveButtonModal: the card's Approve button opens a modal with
// the tier's checklist, one required answer per item; its submission is
// counted once, however often Slack sends it.
func TestApproveButtonModal(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	ctx := context.Background()
	if got := answer(t, r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model https://wiki/tm"))); !strings.Contains(got, "added") {
		t.Fatal(got)
	}
	click := interaction(t, map[string]any{"type": "block_actions", "team": map[string]any{"id": htTeam}, "user": map[string]any{"id": "UALICE"},
		"trigger_id": "trig-1", "channel": map[string]any{"id": htChan}, "message": map[string]any{"ts": htThread},
		"actions": []map[string]any{{"action_id": "threatgate:approve", "block_id": "card-actions", "value": "ESC-1@" + htHead, "type": "button"}}})
	if w := r.post(t, PathInteractions, click); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("click: %d %q", w.Code, w.Body)
	}
	opened := r.slack.waitCalls(t, "views.open", 1)[0]
	view, _ := opened.JSON["view"].(map[string]any)
	if opened.JSON["trigger_id"] != "trig-1" || view == nil {
		t.Fatalf("views.open = %+v", opened.JSON)
	}
	raw, _ := json.Marshal(view)
	for _, want := range []string{`"block_id":"check:data-sensitivity"`, `"block_id":"check:authz-reviewed"`, `"block_id":"text"`, "Approve ESC-1"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the modal lacks %s: %s", want, raw)
		}
	}
	for _, b := range view["blocks"].([]any) {
		bm := b.(map[string]any)
		if id, _ := bm["block_id"].(string); strings.HasPrefix(id, "check:") && bm["optional"] == true {
			t.Errorf("checklist item %s is optional", id)
		}
	}
	meta, _ := view["private_metadata"].(string)
	submit := func(viewID string, checks map[string]string) *httptest.ResponseRecorder {
		values := map[string]any{"text": map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "reviewed the session code"}}}
		for k, v := range checks {
			values["check:"+k] = map[string]any{"v": map[string]any{"type": "plain_text_input", "value": v}}
		}
		return r.post(t, PathInteractions, interaction(t, map[string]any{"type": "view_submission", "team": map[string]any{"id": htTeam},
			"user": map[string]any{"id": "UALICE"}, "view": map[string]any{"id": viewID, "callback_id": callbackView, "private_metadata": meta,
				"state": map[string]any{"values": values}}}))
	}
	// A missing answer keeps the modal open, with the error under it.
	w := submit("V1", map[string]string{"data-sensitivity": "no PII", "authz-reviewed": ""})
	var resp map[string]any
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp["response_action"] != "errors" {
		t.Fatalf("incomplete checklist: %s, want errors", w.Body)
	}
	if errs, _ := resp["errors"].(map[string]any); errs["check:authz-reviewed"] == nil {
		t.Errorf("the error is not under the unanswered item: %s", w.Body)
	}
	// Answered: counted; the modal closes; alice is told in the thread.
	full := map[string]string{"data-sensitivity": "no PII", "authz-reviewed": "yes"}
	if w := submit("V1", full); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("submission: %d %s", w.Code, w.Body)
	}
	esc, err := r.DB.FindEscalation(ctx, "ESC-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(esc.Approvals) != 1 || esc.Approvals[0].By != "alice" || esc.Approvals[0].Checks["authz-reviewed"] != "yes" || esc.State != bot.StateApproved {
		t.Fatalf("after submission: state %s approvals %+v", esc.State, esc.Approvals)
	}
	told := r.slack.waitCalls(t, "chat.postEphemeral", 1)[0]
	if told.Form.Get("user") != "UALICE" || told.Form.Get("thread_ts") != htThread || !strings.Contains(told.Form.Get("text"), "Approval from alice") {
		t.Errorf("confirmation = %v", told.Form)
	}
	// Slack sends the same submission again: nothing changes.
	before := r.events(t)
	submit("V1", full)
	if after := r.events(t); after != before {
		t.Errorf("a repeated submission stored %d events", after-before)
	}
}

// TestStaleCardButtonIsRefused: a click on a card that showed an older
// head is refused like a command written before a push.
func TestStaleCardButtonIsRefused(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 threat-model https://wiki/tm"))
	meta, _ := json.Marshal(modalMeta{Verb: bot.VerbReject, Esc: "ESC-1", Head: "bbbbbbb2222222222222222222222222222222bb", Channel: htChan, Thread: htThread})
	w := r.post(t, PathInteractions, interaction(t, map[string]any{"type": "view_submission", "team": map[string]any{"id": htTeam},
		"user": map[string]any{"id": "UALICE"}, "view": map[string]any{"id": "V9", "callback_id": callbackView, "private_metadata": string(meta),
			"state": map[string]any{"values": map[string]any{"text": map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "no"}}}}}}))
	var resp map[string]any
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp["response_action"] != "errors" {
		t.Fatalf("stale head: %s, want errors", w.Body)
	}
	if esc, _ := r.DB.FindEscalation(context.Background(), "ESC-1"); esc.State == bot.StateRejected {
		t.Errorf("a decision about another head was recorded")
	}
}

// TestThreadReplies: replies in an escalation's thread are commands and
// artifacts; conversation is left alone; a retried event changes nothing.
func TestThreadReplies(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	ctx := context.Background()
	before := r.events(t)
	// Conversation.
	for i, text := range []string{"looks fine to me", "threat model is coming", "approve this please"} {
		if w := r.post(t, PathEvents, threadMessage("EvC"+string(rune('0'+i)), "UALICE", text)); w.Code != http.StatusOK {
			t.Fatalf("event: %d", w.Code)
		}
	}
	r.app.Drain()
	if r.events(t) != before || len(r.slack.Calls("chat.postEphemeral")) != 0 {
		t.Fatalf("conversation was read as commands")
	}
	// An artifact as a reply; then Slack retries the same event.
	body := threadMessage("EvA1", "UANN", "threat-model: https://wiki.example.com/tm")
	r.post(t, PathEvents, body)
	r.post(t, PathEvents, body, "X-Slack-Retry-Num", "1", "X-Slack-Retry-Reason", "http_timeout")
	r.app.Drain()
	esc, _ := r.DB.FindEscalation(ctx, "ESC-1")
	if len(esc.Artifacts) != 1 || esc.Artifacts[0].Ref != "https://wiki.example.com/tm" || esc.Artifacts[0].By != "ann" {
		t.Fatalf("artifacts %+v", esc.Artifacts)
	}
	if n := len(r.slack.Calls("chat.postEphemeral")); n != 1 {
		t.Errorf("%d answers to one (retried) event, want 1", n)
	}
	// A mention of the app makes a command, the escalation implicit.
	r.post(t, PathEvents, threadMessage("EvD1", "UALICE", "<@UBOT> dissent the session key is reused"))
	r.app.Drain()
	esc, _ = r.DB.FindEscalation(ctx, "ESC-1")
	if len(esc.Dissents) != 1 || esc.Dissents[0].By != "alice" {
		t.Errorf("dissent %+v", esc.Dissents)
	}
	// An unmapped user is told how to get mapped.
	before = r.events(t)
	r.post(t, PathEvents, threadMessage("EvU1", "UBOB", "/threatgate dissent me too"))
	r.app.Drain()
	if r.events(t) != before {
		t.Errorf("an unmapped user's reply was recorded")
	}
	last := r.slack.Calls("chat.postEphemeral")
	if got := last[len(last)-1].Form.Get("text"); !strings.Contains(got, "not mapped") {
		t.Errorf("unmapped reply answered %q", got)
	}
	// The app's own messages and replies in other threads are not read.
	r.post(t, PathEvents, strings.Replace(threadMessage("EvB1", "UBOT", "/threatgate dissent bot"), "UBOT", "UBOT", 1))
	r.post(t, PathEvents, strings.Replace(threadMessage("EvO1", "UALICE", "/threatgate dissent other"), htThread, "1700000099.000100", 1))
	r.app.Drain()
	if r.events(t) != before {
		t.Errorf("a bot message or another thread was read")
	}
}

// TestFileUploadIsAnArtifact: a file uploaded in the thread with the
// artifact's kind as its message is recorded as its permalink and name.
func TestFileUploadIsAnArtifact(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	raw, _ := json.Marshal(map[string]any{
		"type": "event_callback", "team_id": htTeam, "event_id": "EvF1",
		"event": map[string]any{"type": "message", "subtype": "file_share", "user": "UANN", "text": "threat-model", "channel": htChan,
			"ts": "1700000006.000100", "thread_ts": htThread,
			"files": []map[string]any{{"id": "F1", "name": "tm.pdf", "title": "tm.pdf", "permalink": "https://acme.slack.com/files/UANN/F1/tm.pdf"}}},
	})
	r.post(t, PathEvents, string(raw))
	r.app.Drain()
	esc, _ := r.DB.FindEscalation(context.Background(), "ESC-1")
	if len(esc.Artifacts) != 1 || esc.Artifacts[0].Ref != "tm.pdf https://acme.slack.com/files/UANN/F1/tm.pdf" {
		t.Fatalf("artifacts %+v", esc.Artifacts)
	}
}

// TestURLVerification: Slack's challenge is echoed once signed.
func TestURLVerification(t *testing.T) {
	r := newHTRig(t)
	w := r.post(t, PathEvents, `{"type":"url_verification","token":"x","challenge":"c-123"}`)
	if w.Code != http.StatusOK || w.Body.String() != "c-123" {
		t.Errorf("challenge: %d %q", w.Code, w.Body)
	}
}

// slowEngine holds every Handle until released.
type slowEngine struct {
	Engine
	release chan struct{}
}

func (s slowEngine) Handle(ctx context.Context, in bot.Input) (bot.Reply, error) {
	<-s.release
	return s.Engine.Handle(ctx, in)
}

// TestSlowCommandIsAcknowledged: when the engine does not answer within
// AckWithin, the command is acknowledged at once and its answer goes to
// the response_url when it comes.
func TestSlowCommandIsAcknowledged(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the rig's Drain: a failing test must not hang
	r.app.Engine = slowEngine{Engine: r.Engine, release: release}
	r.app.AckWithin = 20 * time.Millisecond
	body := command("UALICE", "/threatgate", "dissent ESC-1 later")
	form, _ := url.ParseQuery(body)
	form.Set("response_url", r.slack.srv.URL+"/response")
	got := answer(t, r.post(t, PathCommands, form.Encode()))
	if !strings.Contains(got, "Working on it") {
		t.Fatalf("slow command answered %q", got)
	}
	free()
	late := r.slack.waitCalls(t, "response", 1)[0]
	if !strings.Contains(late.JSON["text"].(string), "Dissent recorded") {
		t.Errorf("late answer %+v", late.JSON)
	}
	// A response_url that is not Slack's is never called.
	if r.app.responseURLAllowed("https://evil.example.com/x") || r.app.responseURLAllowed("http://hooks.slack.com/x") {
		t.Errorf("a foreign response_url is allowed")
	}
}

// TestRepliesAreEscaped: text that came from the sender is escaped in
// what threatgate answers: no broadcast, no mention, no link.
func TestRepliesAreEscaped(t *testing.T) {
	r := newHTRig(t)
	r.open(t)
	got := answer(t, r.post(t, PathCommands, command("UANN", "/threatgate", "artifact ESC-1 <!channel><@U0EVIL> https://x")))
	if strings.Contains(got, "<!channel>") || strings.Contains(got, "<@U0EVIL>") {
		t.Errorf("answer echoes markup: %q", got)
	}
}

// TestEscalateOpensTheIntakeModal: /escalate asks for the policy's intake
// fields in a modal (with what the command already answered filled in);
// its submission files the manual escalation, by the person who typed it.
func TestEscalateOpensTheIntakeModal(t *testing.T) {
	r := newHTRig(t)
	w := r.post(t, PathCommands, command("UCAROL", "/escalate", "shop/api!40 --tier T2 tokens end up in logs\nsummary: the session token is logged"))
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("/escalate: %d %q, want an empty 200 (the modal opens)", w.Code, w.Body)
	}
	opened := r.slack.waitCalls(t, "views.open", 1)[0]
	raw, _ := json.Marshal(opened.JSON["view"])
	for _, want := range []string{`"block_id":"field:summary"`, `"block_id":"field:assets"`, `"initial_value":"the session token is logged"`, "What is at stake?"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the intake modal lacks %s: %s", want, raw)
		}
	}
	meta := opened.JSON["view"].(map[string]any)["private_metadata"].(string)
	w = r.post(t, PathInteractions, interaction(t, map[string]any{"type": "view_submission", "team": map[string]any{"id": htTeam},
		"user": map[string]any{"id": "UCAROL"}, "view": map[string]any{"id": "V7", "callback_id": callbackView, "private_metadata": meta,
			"state": map[string]any{"values": map[string]any{
				"field:summary": map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "the session token is logged"}},
				"field:assets":  map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "every session"}}}}}}))
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("submission: %d %s", w.Code, w.Body)
	}
	esc, err := r.DB.FindByMR(context.Background(), "shop/api", 40)
	if err != nil {
		t.Fatal(err)
	}
	if !esc.Manual || esc.Filer != "carol" || esc.Intake["assets"] != "every session" || esc.Tier != "T2" || esc.State == bot.StateIntake {
		t.Errorf("filed: %+v", esc)
	}
	// Slack requires every field of the modal; a submission without one
	// anyway is a draft that asks for it in its thread, as in the console.
	w = r.post(t, PathCommands, command("UCAROL", "/escalate", "shop/api!41 --tier T2 again"))
	meta = r.slack.waitCalls(t, "views.open", 2)[1].JSON["view"].(map[string]any)["private_metadata"].(string)
	w = r.post(t, PathInteractions, interaction(t, map[string]any{"type": "view_submission", "team": map[string]any{"id": htTeam},
		"user": map[string]any{"id": "UCAROL"}, "view": map[string]any{"id": "V8", "callback_id": callbackView, "private_metadata": meta,
			"state": map[string]any{"values": map[string]any{
				"field:summary": map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "s"}},
				"field:assets":  map[string]any{"v": map[string]any{"type": "plain_text_input", "value": ""}}}}}}))
	if draft, err := r.DB.FindByMR(context.Background(), "shop/api", 41); err != nil || draft.State != bot.StateIntake {
		t.Errorf("a submission without every answer: %+v, %v; want a draft in intake", draft, err)
	}
	for _, b := range opened.JSON["view"].(map[string]any)["blocks"].([]any) {
		if bm := b.(map[string]any); strings.HasPrefix(fmt.Sprint(bm["block_id"]), prefixField) && bm["optional"] == true {
			t.Errorf("intake field %v is optional in the modal", bm["block_id"])
		}
	}
}

package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// sinkPolicy: T2 needs one appsec approval and informs announce (which
// has a Slack channel) and quiet (which has none).
const sinkPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    approvals: [{group: appsec, count: 1}]
    inform: [announce, quiet]
groups:
  appsec: {members: [alice, bob]}
  announce: {members: [dave], slack_channel: C0ANNOUNCE}
  quiet: {members: [dave]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, slack: UANN, email: ann@example.com}
  - {gitlab: alice, slack: U01ALICE, email: alice@example.com}
  - {gitlab: bob, slack: U02BOB, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
caps: {manual_escalations_per_quarter: 1, override_group: leads}
authority: {retier: [leads], arbiter: [leads]}
`

// sinkToken is the bot token of the tests: it must show in no error and
// no log line.
const sinkToken = "xoxb-1111-2222-SINKSECRET"

// The channels of the tests.
const (
	sinkMain     = "C0ESC"
	sinkSecurity = "C0SECURITY"
	sinkAnnounce = "C0ANNOUNCE"
	sinkBot      = "UBOT"
)

// sinkCall is one Web API call the fake received: the method and its
// form (query and body).
type sinkCall struct {
	Method string
	Form   url.Values
}

// sinkMsg is a message the fake holds.
type sinkMsg struct {
	Channel, TS, ThreadTS, Text, Blocks, Metadata, User string
}

// sinkFail is a scripted failure: the next call of Method (in Channel,
// when set) is answered with Status (and Retry-After) or ok:false Err.
// With Post the call takes effect first: the request reached Slack, the
// answer did not.
type sinkFail struct {
	Method, Channel string
	Status          int
	RetryAfter      string
	Err             string
	Post            bool
}

// sinkFake is a Slack Web API that records every call and keeps the
// messages posted, so that conversations.history and .replies show them
// with their metadata as Slack does.
type sinkFake struct {
	t     *testing.T
	srv   *httptest.Server
	clock *bottest.Clock

	mu    sync.Mutex
	calls []sinkCall
	msgs  []*sinkMsg
	fails []sinkFail
	n     int
}

func newSinkFake(t *testing.T, clock *bottest.Clock) *sinkFake {
	f := &sinkFake{t: t, clock: clock}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// fail scripts failures, used in order.
func (f *sinkFake) fail(fs ...sinkFail) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = append(f.fails, fs...)
}

func (f *sinkFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	method := strings.TrimPrefix(r.URL.Path, "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, sinkCall{Method: method, Form: r.Form})
	var fail *sinkFail
	for i, x := range f.fails {
		if x.Method == method && (x.Channel == "" || x.Channel == r.Form.Get("channel")) {
			fail = &x
			f.fails = slices.Delete(f.fails, i, i+1)
			break
		}
	}
	if fail != nil && !fail.Post {
		f.writeFail(w, fail)
		return
	}
	resp := f.do(method, r.Form)
	if fail != nil {
		f.writeFail(w, fail)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *sinkFake) writeFail(w http.ResponseWriter, x *sinkFail) {
	if x.RetryAfter != "" {
		w.Header().Set("Retry-After", x.RetryAfter)
	}
	if x.Status != 0 {
		w.WriteHeader(x.Status)
		fmt.Fprint(w, "<html>oops</html>")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": x.Err})
}

// do answers a call as Slack would.
func (f *sinkFake) do(method string, form url.Values) map[string]any {
	ch := form.Get("channel")
	switch method {
	case "chat.postMessage":
		f.n++
		m := &sinkMsg{Channel: ch, TS: fmt.Sprintf("%d.%06d", f.clock.Now().Unix(), f.n), ThreadTS: form.Get("thread_ts"),
			Text: form.Get("text"), Blocks: form.Get("blocks"), Metadata: form.Get("metadata"), User: sinkBot}
		f.msgs = append(f.msgs, m)
		return map[string]any{"ok": true, "channel": ch, "ts": m.TS, "message": f.wire(m, true)}
	case "chat.update":
		for _, m := range f.msgs {
			if m.Channel == ch && m.TS == form.Get("ts") {
				m.Text, m.Blocks = form.Get("text"), form.Get("blocks")
				return map[string]any{"ok": true, "channel": ch, "ts": m.TS, "text": m.Text}
			}
		}
		return map[string]any{"ok": false, "error": "message_not_found"}
	case "chat.getPermalink":
		return map[string]any{"ok": true, "channel": ch, "permalink": "https://slack.example/archives/" + ch + "/p" + strings.ReplaceAll(form.Get("message_ts"), ".", "")}
	case "conversations.history", "conversations.replies":
		meta := form.Get("include_all_metadata") == "1"
		var out []map[string]any
		for _, m := range f.msgs {
			if m.Channel != ch || !sinkTSAfter(m.TS, form.Get("oldest")) {
				continue
			}
			if method == "conversations.history" && m.ThreadTS == "" ||
				method == "conversations.replies" && (m.TS == form.Get("ts") || m.ThreadTS == form.Get("ts")) {
				out = append(out, f.wire(m, meta))
			}
		}
		if method == "conversations.history" {
			slices.Reverse(out) // newest first
		}
		start, _ := strconv.Atoi(form.Get("cursor"))
		limit, _ := strconv.Atoi(form.Get("limit"))
		if limit <= 0 {
			limit = 100
		}
		out = out[min(start, len(out)):]
		next := ""
		if len(out) > limit {
			out, next = out[:limit], strconv.Itoa(start+limit)
		}
		return map[string]any{"ok": true, "messages": out, "has_more": next != "", "response_metadata": map[string]any{"next_cursor": next}}
	}
	f.t.Errorf("unexpected Slack call %s", method)
	return map[string]any{"ok": false, "error": "unknown_method"}
}

// wire is m as the Web API shows it.
func (f *sinkFake) wire(m *sinkMsg, meta bool) map[string]any {
	w := map[string]any{"type": "message", "user": m.User, "bot_id": "B0BOT", "text": m.Text, "ts": m.TS}
	if m.ThreadTS != "" {
		w["thread_ts"] = m.ThreadTS
	}
	if meta && m.Metadata != "" {
		w["metadata"] = json.RawMessage(m.Metadata)
	}
	return w
}

// sinkTSAfter reports whether Slack ts a is after oldest ("" for none).
func sinkTSAfter(a, oldest string) bool {
	if oldest == "" {
		return true
	}
	split := func(ts string) (int64, int64) {
		s, us, _ := strings.Cut(ts, ".")
		si, _ := strconv.ParseInt(s, 10, 64)
		ui, _ := strconv.ParseInt(us, 10, 64)
		return si, ui
	}
	as, au := split(a)
	os, ou := split(oldest)
	return as > os || as == os && au > ou
}

// of returns the calls of method.
func (f *sinkFake) of(method string) []sinkCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sinkCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// in returns the messages in channel.
func (f *sinkFake) in(channel string) []sinkMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sinkMsg
	for _, m := range f.msgs {
		if m.Channel == channel {
			out = append(out, *m)
		}
	}
	return out
}

// reset forgets the calls made so far (not the messages).
func (f *sinkFake) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// sinkRig is a rig (policy, store, engine, clock), the fake Slack and an
// App over them whose logs go to logs.
type sinkRig struct {
	*testrig.Rig
	fake *sinkFake
	app  *App
	logs *bytes.Buffer
}

func newSinkRig(t *testing.T) *sinkRig {
	t.Helper()
	r := &sinkRig{Rig: testrig.NewRig(t, sinkPolicy), logs: &bytes.Buffer{}}
	r.Engine.SetSinks(map[string][]string{bot.SinkChat: {SinkName}})
	r.fake = newSinkFake(t, r.Clock)
	r.app = r.newApp()
	t.Cleanup(func() {
		if strings.Contains(r.logs.String(), "SINKSECRET") {
			t.Errorf("the token is in the logs:\n%s", r.logs)
		}
	})
	return r
}

// newApp is a new App (as after a restart: nothing in memory) over the
// rig's engine, store and fake Slack.
func (r *sinkRig) newApp() *App {
	return NewApp(&App{
		Client: sl.New(sinkToken, sl.OptionAPIURL(r.fake.srv.URL+"/")),
		Engine: r.Engine, Store: r.DB, Clock: r.Clock,
		Log:     slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Channel: sinkMain, SecurityChannel: sinkSecurity, BotUserID: sinkBot,
	})
}

// deliver delivers e as the dispatcher would: with the thread the store
// holds, recording the ref Deliver returns when there was none.
func (r *sinkRig) deliver(t *testing.T, e bot.Effect) (bot.MessageRef, error) {
	t.Helper()
	ctx := context.Background()
	thread, err := r.DB.ThreadRef(ctx, e.Escalation, SinkName)
	if err != nil {
		t.Fatal(err)
	}
	e.Thread = thread
	ref, err := r.app.Deliver(ctx, e)
	if err == nil && ref != (bot.MessageRef{}) && thread == (bot.MessageRef{}) {
		if err := r.DB.SetThreadRef(ctx, e.Escalation, SinkName, ref); err != nil {
			t.Fatal(err)
		}
	}
	return ref, err
}

func (r *sinkRig) thread(t *testing.T, sink string) bot.MessageRef {
	t.Helper()
	ref, err := r.DB.ThreadRef(context.Background(), "ESC-1", sink)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func sinkCard() *bot.CardData {
	return &bot.CardData{Project: "shop/api", MRIID: 12, Title: "session rework", Tier: "T2", TierName: "high", State: bot.StateInReview,
		HeadSHA: "aaa1111122223333", Approvals: []bot.CardRow{{Group: "appsec", Count: 1}}, Waiting: []string{"alice", "bob"},
		Inform: []string{"announce", "quiet"}}
}

func sinkSummary(id string) bot.Effect {
	return bot.Effect{ID: id, Kind: bot.EffectThreadSummary, Escalation: "ESC-1", Sink: SinkName, Card: sinkCard()}
}

func sinkPost(id string, n *bot.Notice, mention ...string) bot.Effect {
	return bot.Effect{ID: id, Kind: bot.EffectThreadPost, Escalation: "ESC-1", Sink: SinkName, Notice: n, Mention: mention}
}

// sinkMeta decodes the metadata of a call.
func sinkMeta(t *testing.T, c sinkCall) sl.SlackMetadata {
	t.Helper()
	var m sl.SlackMetadata
	if err := json.Unmarshal([]byte(c.Form.Get("metadata")), &m); err != nil {
		t.Fatalf("metadata %q: %v", c.Form.Get("metadata"), err)
	}
	return m
}

func wantMeta(t *testing.T, c sinkCall, effect, part string) {
	t.Helper()
	m := sinkMeta(t, c)
	if m.EventType != "threatgate_effect" || m.EventPayload["effect"] != effect || m.EventPayload["part"] != part {
		t.Errorf("metadata = %+v, want effect %q part %q", m, effect, part)
	}
}

// TestSinkSummaryOpensThenEdits: the first summary posts the parent in
// the channel (recorded as the thread at once); later ones edit it in
// place. The informed group with a channel gets one message, edited
// after; the one without gets nothing.
func TestSinkSummaryOpensThenEdits(t *testing.T) {
	r := newSinkRig(t)
	ref, err := r.deliver(t, sinkSummary("E1"))
	if err != nil {
		t.Fatal(err)
	}
	posts := r.fake.of("chat.postMessage")
	if len(posts) != 2 {
		t.Fatalf("%d posts, want 2 (the parent, the group's)", len(posts))
	}
	parent := posts[0]
	if ch := parent.Form.Get("channel"); ch != sinkMain || parent.Form.Get("thread_ts") != "" {
		t.Errorf("parent posted in %q thread %q, want %s at the top", ch, parent.Form.Get("thread_ts"), sinkMain)
	}
	if want := (bot.MessageRef{Channel: sinkMain, TS: r.fake.in(sinkMain)[0].TS}); ref != want {
		t.Errorf("ref = %+v, want %+v", ref, want)
	}
	if got := r.thread(t, SinkName); got != ref {
		t.Errorf("thread recorded = %+v, want %+v", got, ref)
	}
	wantMeta(t, parent, "E1", "thread")
	if b := sinkBlocks(t, parent); !strings.Contains(b, "<@U01ALICE>") || !strings.Contains(b, "ESC-1 · shop/api!12") {
		t.Errorf("parent blocks are not the card with its mentions: %s", b)
	}

	group := posts[1]
	if ch := group.Form.Get("channel"); ch != sinkAnnounce {
		t.Errorf("group message in %q, want %s", ch, sinkAnnounce)
	}
	wantMeta(t, group, "E1", "inform:announce")
	if b := sinkBlocks(t, group); strings.Contains(b, "<@") || !strings.Contains(b, "<#C0ESC>") || !strings.Contains(b, "announce") {
		t.Errorf("group message mentions someone or does not name the thread's channel: %s", b)
	}
	gref := r.thread(t, SinkName+"#inform:announce")
	if gref.Channel != sinkAnnounce || gref.TS != r.fake.in(sinkAnnounce)[0].TS {
		t.Errorf("group message recorded as %+v", gref)
	}
	if esc, err := r.DB.EscalationOfThread(context.Background(), SinkName, ref); err != nil || esc != "ESC-1" {
		t.Errorf("EscalationOfThread = %q, %v; want ESC-1", esc, err)
	}

	// The next summary edits both, posts nothing.
	r.fake.reset()
	next := sinkSummary("E2")
	next.Card.State, next.Card.Waiting = bot.StateApproved, nil
	if got, err := r.deliver(t, next); err != nil || got != ref {
		t.Fatalf("second summary: %+v, %v; want %+v", got, err, ref)
	}
	if n := len(r.fake.of("chat.postMessage")); n != 0 {
		t.Errorf("%d posts on an edit, want 0", n)
	}
	ups := r.fake.of("chat.update")
	if len(ups) != 2 {
		t.Fatalf("%d chat.update calls, want 2", len(ups))
	}
	if ups[0].Form.Get("channel") != sinkMain || ups[0].Form.Get("ts") != ref.TS {
		t.Errorf("parent edit at %s %s, want %+v", ups[0].Form.Get("channel"), ups[0].Form.Get("ts"), ref)
	}
	if ups[1].Form.Get("channel") != sinkAnnounce || ups[1].Form.Get("ts") != gref.TS {
		t.Errorf("group edit at %s %s, want %+v", ups[1].Form.Get("channel"), ups[1].Form.Get("ts"), gref)
	}
	if m := r.fake.in(sinkMain); len(m) != 1 || !strings.Contains(m[0].Text, "approved") {
		t.Errorf("channel holds %+v, want the one parent, approved", m)
	}
}

// TestSinkThreadPost: a post goes in the thread with its mentions; a
// security one is copied to the security channel, once, naming the
// escalation and linking the thread, mentioning nobody; a post with no
// thread yet opens it.
func TestSinkThreadPost(t *testing.T) {
	r := newSinkRig(t)

	// No thread yet: the post is the parent.
	ref, err := r.deliver(t, sinkPost("P1", &bot.Notice{Kind: bot.NoticeReady}))
	if err != nil {
		t.Fatal(err)
	}
	first := r.fake.of("chat.postMessage")
	if len(first) != 1 || first[0].Form.Get("channel") != sinkMain || first[0].Form.Get("thread_ts") != "" {
		t.Fatalf("opening post: %+v", first)
	}
	if ref.Channel != sinkMain || ref.TS == "" || r.thread(t, SinkName) != ref {
		t.Fatalf("ref %+v, recorded %+v", ref, r.thread(t, SinkName))
	}

	r.fake.reset()
	e := sinkPost("P2", &bot.Notice{Kind: bot.NoticeBypass, Project: "shop/api", MRIID: 12, SHA: "ccc3333344445555", State: bot.StateInReview, Tier: "T2"}, "alice", "dave")
	e.Security = true
	// The security copy fails once (not posted): the retry posts only it.
	r.fake.fail(sinkFail{Method: "chat.postMessage", Channel: sinkSecurity, Status: 503})
	if _, err := r.deliver(t, e); err == nil {
		t.Fatal("a failed security copy: no error")
	}
	r.Clock.Advance(2 * time.Second)
	if got, err := r.deliver(t, e); err != nil || got != (bot.MessageRef{}) {
		t.Fatalf("retry: %+v, %v", got, err)
	}
	posts := r.fake.of("chat.postMessage")
	var inThread, inSec []sinkCall
	for _, p := range posts {
		switch p.Form.Get("channel") {
		case sinkMain:
			inThread = append(inThread, p)
		case sinkSecurity:
			inSec = append(inSec, p)
		}
	}
	if len(inThread) != 1 {
		t.Fatalf("%d posts in the thread, want 1", len(inThread))
	}
	if got := inThread[0].Form.Get("thread_ts"); got != ref.TS {
		t.Errorf("thread_ts = %q, want %q", got, ref.TS)
	}
	if text := inThread[0].Form.Get("text"); !strings.HasPrefix(text, "<@U01ALICE>, dave: ") {
		t.Errorf("thread text %q does not start with the mentions", text)
	}
	wantMeta(t, inThread[0], "P2", "thread")
	if got := len(r.fake.in(sinkSecurity)); got != 1 {
		t.Fatalf("%d messages in the security channel, want 1", got)
	}
	last := inSec[len(inSec)-1]
	wantMeta(t, last, "P2", "security")
	if last.Form.Get("thread_ts") != "" {
		t.Error("the security copy is in a thread, want a top-level message")
	}
	blocks, text := sinkBlocks(t, last), last.Form.Get("text")
	if strings.Contains(blocks, "<@") || strings.Contains(text, "<@") {
		t.Errorf("the security copy mentions someone: %s / %s", text, blocks)
	}
	link := "<https://slack.example/archives/C0ESC/p" + strings.ReplaceAll(ref.TS, ".", "") + "|view the thread>"
	if !strings.Contains(blocks, "ESC-1") || !strings.Contains(blocks, link) || !strings.Contains(text, "ESC-1") || !strings.Contains(text, "BYPASS") {
		t.Errorf("the security copy does not name ESC-1 and link %s: %s / %s", link, text, blocks)
	}

	// No security channel: no copy.
	r.app.SecurityChannel = ""
	r.fake.reset()
	e.ID = "P3"
	if _, err := r.deliver(t, e); err != nil {
		t.Fatal(err)
	}
	if posts := r.fake.of("chat.postMessage"); len(posts) != 1 || posts[0].Form.Get("channel") != sinkMain {
		t.Errorf("without a security channel: %d posts", len(posts))
	}
}

// TestSinkRateLimit: a 429 with Retry-After asks for that wait, one
// without for a plain retry; neither posted, so the retry posts without
// looking first.
func TestSinkRateLimit(t *testing.T) {
	r := newSinkRig(t)
	r.fake.fail(sinkFail{Method: "chat.postMessage", Status: 429, RetryAfter: "7"}, sinkFail{Method: "chat.postMessage", Status: 429},
		sinkFail{Method: "chat.postMessage", Err: "ratelimited"})
	e := sinkPost("P1", &bot.Notice{Kind: bot.NoticeReady})
	_, err := r.deliver(t, e)
	var de *bot.DeliveryError
	if !errors.As(err, &de) || de.After != 7*time.Second || de.Permanent {
		t.Fatalf("429 with Retry-After: %#v, want a DeliveryError After 7s", err)
	}
	for _, what := range []string{"429 without Retry-After", "ok:false ratelimited"} {
		_, err = r.deliver(t, e)
		if !errors.As(err, &de) || de.After != 0 || de.Permanent {
			t.Fatalf("%s: %#v, want a plain DeliveryError", what, err)
		}
	}
	if _, err := r.deliver(t, e); err != nil {
		t.Fatal(err)
	}
	if n := len(r.fake.in(sinkMain)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	if n := len(r.fake.of("conversations.history")) + len(r.fake.of("conversations.replies")); n != 0 {
		t.Errorf("%d look-ups after rate limits, want none", n)
	}
}

// TestSinkUncertainPostsOnce: a post answered with a 5xx (or an error
// Slack says may have posted) is looked for before it is posted again:
// whether or not Slack had posted it, there is exactly one message.
func TestSinkUncertainPostsOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fail   sinkFail
		thread bool // post in an existing thread (replies), else open one (history)
	}{
		{"500 not posted, in thread", sinkFail{Status: 500}, true},
		{"500 posted, in thread", sinkFail{Status: 500, Post: true}, true},
		{"502 posted, opening the thread", sinkFail{Status: 502, Post: true}, false},
		{"500 not posted, opening the thread", sinkFail{Status: 500}, false},
		{"fatal_error posted", sinkFail{Err: "fatal_error", Post: true}, true},
		{"summary 503 posted", sinkFail{Status: 503, Post: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newSinkRig(t)
			var parent bot.MessageRef
			if tt.thread {
				var err error
				if parent, err = r.deliver(t, sinkPost("P0", &bot.Notice{Kind: bot.NoticeReady})); err != nil {
					t.Fatal(err)
				}
			}
			r.fake.reset()
			before := len(r.fake.in(sinkMain))
			e := sinkPost("P1", &bot.Notice{Kind: bot.NoticeDissent, By: "bob", Text: "no"})
			if strings.HasPrefix(tt.name, "summary") {
				e = sinkSummary("S1")
			}
			f := tt.fail
			f.Method, f.Channel = "chat.postMessage", sinkMain
			r.fake.fail(f)
			_, err := r.deliver(t, e)
			var de *bot.DeliveryError
			if !errors.As(err, &de) || de.Permanent {
				t.Fatalf("first attempt: %v, want a retryable DeliveryError", err)
			}
			r.Clock.Advance(3 * time.Second)
			ref, err := r.deliver(t, e)
			if err != nil {
				t.Fatal(err)
			}
			msgs := r.fake.in(sinkMain)
			if got := len(msgs) - before; got != 1 {
				t.Fatalf("%d messages posted, want exactly 1", got)
			}
			lookup := "conversations.history"
			if tt.thread {
				lookup = "conversations.replies"
				if got := msgs[len(msgs)-1].ThreadTS; got != parent.TS {
					t.Errorf("posted in thread %q, want %q", got, parent.TS)
				}
			} else if ref != (bot.MessageRef{Channel: sinkMain, TS: msgs[len(msgs)-1].TS}) || r.thread(t, SinkName) != ref {
				t.Errorf("ref %+v (recorded %+v), want the one message %s", ref, r.thread(t, SinkName), msgs[len(msgs)-1].TS)
			}
			calls := r.fake.of(lookup)
			if len(calls) != 1 {
				t.Fatalf("%d %s calls, want 1", len(calls), lookup)
			}
			if c := calls[0].Form; c.Get("include_all_metadata") != "1" || c.Get("channel") != sinkMain || c.Get("oldest") == "" {
				t.Errorf("%s asked %v, want all metadata from a time on in %s", lookup, c, sinkMain)
			}
			if tt.thread && calls[0].Form.Get("ts") != parent.TS {
				t.Errorf("replies of %q, want %q", calls[0].Form.Get("ts"), parent.TS)
			}
			wantPosts := 2
			if tt.fail.Post {
				wantPosts = 1 // found: not posted again
			}
			if n := len(r.fake.of("chat.postMessage")); n < wantPosts || n > wantPosts+1 { // + the group message of a summary
				t.Errorf("%d chat.postMessage calls, want %d", n, wantPosts)
			}
		})
	}
}

// TestSinkPermanentErrors: ok:false errors no retry fixes are Permanent,
// say which call and channel failed, and never carry the token; others
// are retried.
func TestSinkPermanentErrors(t *testing.T) {
	for _, tt := range []struct {
		err       string
		status    int
		permanent bool
	}{
		{err: "channel_not_found", permanent: true},
		{err: "not_in_channel", permanent: true},
		{err: "is_archived", permanent: true},
		{err: "invalid_auth", permanent: true},
		{err: "account_inactive", permanent: true},
		{err: "token_revoked", permanent: true},
		{err: "missing_scope", permanent: true},
		{err: "msg_too_long", permanent: true},
		{err: "invalid_blocks", permanent: true},
		{err: "internal_error"},
		{err: "some_new_error"},
		{status: 404, permanent: true},
		{status: 500},
	} {
		name := tt.err
		if tt.status != 0 {
			name = strconv.Itoa(tt.status)
		}
		t.Run(name, func(t *testing.T) {
			r := newSinkRig(t)
			r.fake.fail(sinkFail{Method: "chat.postMessage", Err: tt.err, Status: tt.status})
			_, err := r.deliver(t, sinkPost("P1", &bot.Notice{Kind: bot.NoticeReady}))
			var de *bot.DeliveryError
			if !errors.As(err, &de) || de.Permanent != tt.permanent || de.After != 0 {
				t.Fatalf("err = %#v, want a DeliveryError with Permanent %v", err, tt.permanent)
			}
			if msg := err.Error(); !strings.Contains(msg, "chat.postMessage in C0ESC") || strings.Contains(msg, "SINKSECRET") {
				t.Errorf("err = %q, want the call and channel and no token", msg)
			}
			if tt.err != "" && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %q, want %q in it", err, tt.err)
			}
		})
	}
}

// TestSinkParentGone: when the parent can no longer be edited, the error
// is Permanent and nothing new is posted (the thread stays where it is).
func TestSinkParentGone(t *testing.T) {
	for _, slackErr := range []string{"message_not_found", "cant_update_message"} {
		t.Run(slackErr, func(t *testing.T) {
			r := newSinkRig(t)
			if _, err := r.deliver(t, sinkSummary("S1")); err != nil {
				t.Fatal(err)
			}
			r.fake.reset()
			r.fake.fail(sinkFail{Method: "chat.update", Channel: sinkMain, Err: slackErr})
			_, err := r.deliver(t, sinkSummary("S2"))
			var de *bot.DeliveryError
			if !errors.As(err, &de) || !de.Permanent || !strings.Contains(err.Error(), slackErr) {
				t.Fatalf("err = %v, want a Permanent DeliveryError naming %s", err, slackErr)
			}
			if n := len(r.fake.of("chat.postMessage")); n != 0 {
				t.Errorf("%d posts, want none", n)
			}
		})
	}
}

// TestSinkGroupFailures: a group's message that fails for a moment fails
// the effect, but the parent posted before it is kept: the retry edits it
// and posts the group's message once. One that fails for good is logged
// and the effect is delivered.
func TestSinkGroupFailures(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		r := newSinkRig(t)
		r.fake.fail(sinkFail{Method: "chat.postMessage", Channel: sinkAnnounce, Status: 500, Post: true})
		if _, err := r.deliver(t, sinkSummary("S1")); err == nil || sinkIsPermanent(err) {
			t.Fatalf("err = %v, want a retryable error", err)
		}
		parent := r.thread(t, SinkName)
		if parent.Channel != sinkMain {
			t.Fatalf("the parent was not recorded when the group failed: %+v", parent)
		}
		r.Clock.Advance(2 * time.Second)
		if ref, err := r.deliver(t, sinkSummary("S1")); err != nil || ref != parent {
			t.Fatalf("retry: %+v, %v; want %+v", ref, err, parent)
		}
		if n, g := len(r.fake.in(sinkMain)), len(r.fake.in(sinkAnnounce)); n != 1 || g != 1 {
			t.Errorf("%d parents and %d group messages, want 1 and 1", n, g)
		}
		if n := len(r.fake.of("chat.update")); n != 1 {
			t.Errorf("%d chat.update calls, want 1 (the parent, on the retry)", n)
		}
		if got := r.thread(t, SinkName+"#inform:announce"); got.Channel != sinkAnnounce {
			t.Errorf("group message recorded as %+v", got)
		}
	})
	t.Run("permanent", func(t *testing.T) {
		r := newSinkRig(t)
		r.fake.fail(sinkFail{Method: "chat.postMessage", Channel: sinkAnnounce, Err: "not_in_channel"})
		if _, err := r.deliver(t, sinkSummary("S1")); err != nil {
			t.Fatalf("err = %v, want the summary delivered", err)
		}
		if !strings.Contains(r.logs.String(), "not_in_channel") || !strings.Contains(r.logs.String(), "level=ERROR") {
			t.Errorf("the failure is not logged as an error:\n%s", r.logs)
		}
		// The next summary tries again.
		if _, err := r.deliver(t, sinkSummary("S2")); err != nil {
			t.Fatal(err)
		}
		if g := len(r.fake.in(sinkAnnounce)); g != 1 {
			t.Errorf("%d group messages, want 1", g)
		}
	})
}

// sinkOwn are the tokens the sink writes itself, besides those the
// renderer's tests allow: channel links and the thread's permalink.
var sinkOwn = regexp.MustCompile(`<#C0[A-Z]+>|<https://slack\.example/archives/C0[A-Z]+/p\d+\|view the thread>|<https://gitlab\.example\.com/shop/api/-/merge_requests/12\|shop/api!12>`)

// TestSinkHostileTextIsInert: outside text in a card and in a notice
// reaches Slack with no mention, broadcast or link threatgate did not
// make, in every message the sink sends: parent, edit, group, thread,
// security copy.
func TestSinkHostileTextIsInert(t *testing.T) {
	r := newSinkRig(t)
	s := sinkSummary("S1")
	s.Card.Title = hostile
	s.Card.UnknownAuthors = []string{hostile}
	s.Card.MRURL = "https://gitlab.example.com/shop/api/-/merge_requests/12"
	s.Card.Author = hostile
	if _, err := r.deliver(t, s); err != nil {
		t.Fatal(err)
	}
	s.ID = "S2"
	if _, err := r.deliver(t, s); err != nil {
		t.Fatal(err)
	}
	p := sinkPost("P1", &bot.Notice{Kind: bot.NoticeForged, Found: hostile, FoundBy: hostile, SHA: "aaa", Reset: "pending"}, "alice")
	p.Security = true
	if _, err := r.deliver(t, p); err != nil {
		t.Fatal(err)
	}
	q := sinkPost("P2", nil, "bob")
	q.Text = hostile
	if _, err := r.deliver(t, q); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range append(r.fake.of("chat.postMessage"), r.fake.of("chat.update")...) {
		n++
		where := c.Method + " " + c.Form.Get("channel")
		inert(t, where+" text", sinkOwn.ReplaceAllString(c.Form.Get("text"), ""))
		for _, s := range sinkStrings(sinkDecode(t, c)) {
			inert(t, where+" blocks", sinkOwn.ReplaceAllString(s, ""))
		}
	}
	if n != 7 { // parent, group, 2 edits, thread, security, thread
		t.Errorf("%d messages checked, want 7", n)
	}
}

// sinkDecode decodes the blocks of a call.
func sinkDecode(t *testing.T, c sinkCall) any {
	t.Helper()
	var bs any
	if err := json.Unmarshal([]byte(c.Form.Get("blocks")), &bs); err != nil {
		t.Fatalf("%s blocks %q: %v", c.Method, c.Form.Get("blocks"), err)
	}
	return bs
}

// sinkBlocks is every string in the blocks of a call, one a line.
func sinkBlocks(t *testing.T, c sinkCall) string {
	t.Helper()
	return strings.Join(sinkStrings(sinkDecode(t, c)), "\n")
}

// sinkStrings collects every string in decoded JSON.
func sinkStrings(x any) []string {
	switch x := x.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, sinkStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, sinkStrings(e)...)
		}
		return out
	}
	return nil
}

// TestSinkOtherEffects: effects that are not chat are nothing to do.
func TestSinkOtherEffects(t *testing.T) {
	r := newSinkRig(t)
	for _, k := range []bot.EffectKind{bot.EffectStatus, bot.EffectMRNote, bot.EffectPage, bot.EffectRefresh} {
		if ref, err := r.app.Deliver(context.Background(), bot.Effect{ID: "X", Kind: k, Text: "x"}); err != nil || ref != (bot.MessageRef{}) {
			t.Errorf("%s: %+v, %v; want nothing", k, ref, err)
		}
	}
	if ref, err := r.app.Deliver(context.Background(), bot.Effect{ID: "Y", Kind: bot.EffectThreadSummary}); err != nil || ref != (bot.MessageRef{}) {
		t.Errorf("a summary without a card: %+v, %v; want nothing", ref, err)
	}
	r.fake.mu.Lock()
	defer r.fake.mu.Unlock()
	if len(r.fake.calls) != 0 {
		t.Errorf("%d Slack calls, want none", len(r.fake.calls))
	}
}

// TestSinkThroughDispatcher: effects committed by the engine go out
// through a real dispatcher: the summary opens the thread, the opening
// post lands in it, the informed group gets its message. After a restart
// (store reopened, new App and dispatcher) the thread is read back: the
// approval edits the parent and posts in the same thread.
func TestSinkThroughDispatcher(t *testing.T) {
	r := newSinkRig(t)
	ctx := context.Background()
	in := bot.Input{Kind: bot.InputMR, Key: "hook-1", MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: 12, PathWithNamespace: "shop/api", Title: "session rework", TargetBranch: "main", SHA: "aaa1111122223333", UpdatedAt: r.Clock.Now(),
		Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "internal/auth/s.go", NewPath: "internal/auth/s.go"}},
	}}}
	if _, err := r.Engine.Handle(ctx, in); err != nil {
		t.Fatal(err)
	}
	d := bot.NewDispatcher(r.DB, nil, nil, nil, r.Clock, nil)
	d.AddSink(SinkName, r.app)
	d.Threads = r.DB
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := r.fake.in(sinkMain)
	if len(msgs) != 2 {
		t.Fatalf("%d messages in the channel, want the parent and the opening post", len(msgs))
	}
	parent := msgs[0]
	if parent.ThreadTS != "" || !strings.Contains(parent.Blocks, "ESC-1 · shop/api!12") {
		t.Errorf("parent %+v is not the card at the top", parent)
	}
	if msgs[1].ThreadTS != parent.TS || !strings.Contains(msgs[1].Text, "<@U01ALICE>") {
		t.Errorf("opening post %+v is not in the thread %s mentioning alice", msgs[1], parent.TS)
	}
	if g := r.fake.in(sinkAnnounce); len(g) != 1 {
		t.Errorf("%d group messages, want 1", len(g))
	}
	if pending, _ := r.DB.PendingEffects(ctx, 0); len(pending) != 0 {
		t.Errorf("%d effects still pending", len(pending))
	}

	// Restart.
	if err := r.DB.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(r.Dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	r.DB = db
	r.Engine = bot.NewEngine(db, r.Policy, r.Clock, nil)
	r.Engine.SetSinks(map[string][]string{bot.SinkChat: {SinkName}})
	r.app = r.newApp()
	d = bot.NewDispatcher(db, nil, nil, nil, r.Clock, nil)
	d.AddSink(SinkName, r.app)
	d.Threads = db
	r.fake.reset()

	r.Clock.Advance(time.Hour)
	c, err := bot.ParseCommand("/approve ESC-1 reviewed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: "U01ALICE"}, Command: &c}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.fake.of("chat.postMessage") {
		if p.Form.Get("channel") == sinkMain && p.Form.Get("thread_ts") != parent.TS {
			t.Errorf("after the restart a post went to %q, want the thread %s", p.Form.Get("thread_ts"), parent.TS)
		}
		if p.Form.Get("channel") == sinkAnnounce {
			t.Error("the group's message was posted again, want it edited")
		}
	}
	ups := r.fake.of("chat.update")
	if len(ups) != 2 || ups[0].Form.Get("ts") != parent.TS {
		t.Fatalf("chat.update calls %+v, want the parent %s and the group's message", ups, parent.TS)
	}
	msgs = r.fake.in(sinkMain)
	if len(msgs) != 3 || !strings.Contains(msgs[0].Text, "approved") || !strings.Contains(msgs[2].Text, "approved") {
		t.Errorf("channel after the approval: %+v", msgs)
	}
	if esc, err := db.EscalationOfThread(ctx, SinkName, bot.MessageRef{Channel: sinkMain, TS: parent.TS}); err != nil || esc != "ESC-1" {
		t.Errorf("EscalationOfThread = %q, %v", esc, err)
	}
}

// TestSinkRemindersByDirectMessage: a reminder goes into the thread and,
// once, to each person it asks who has a Slack id, by direct message; a
// retried delivery sends no second one.
func TestSinkRemindersByDirectMessage(t *testing.T) {
	r := newSinkRig(t)
	if _, err := r.deliver(t, sinkPost("P1", &bot.Notice{Kind: bot.NoticeReady})); err != nil {
		t.Fatal(err)
	}
	r.fake.reset()
	nudge := sinkPost("N1", &bot.Notice{Kind: bot.NoticeNudge, Why: "approval", Threshold: 50, AskedOf: []string{"alice", "dave"}}, "alice", "dave")
	// The DM fails once: the retry sends only it.
	r.fake.fail(sinkFail{Method: "chat.postMessage", Channel: "U01ALICE", Status: 503})
	if _, err := r.deliver(t, nudge); err == nil {
		t.Fatal("a failed direct message: no error")
	}
	r.Clock.Advance(2 * time.Second)
	if _, err := r.deliver(t, nudge); err != nil {
		t.Fatal(err)
	}
	if n := len(r.fake.in("U01ALICE")); n != 1 {
		t.Errorf("%d direct messages to alice, want 1", n)
	}
	thread := 0
	for _, c := range r.fake.of("chat.postMessage") {
		if c.Form.Get("channel") == sinkMain && c.Form.Get("thread_ts") != "" {
			thread++
		}
	}
	if thread != 1 {
		t.Errorf("%d thread posts, want 1", thread)
	}
	// Other notices are not sent by direct message.
	r.fake.reset()
	if _, err := r.deliver(t, sinkPost("P3", &bot.Notice{Kind: bot.NoticeReady}, "alice")); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.fake.of("chat.postMessage") {
		if c.Form.Get("channel") == "U01ALICE" {
			t.Errorf("a ready notice was sent by direct message")
		}
	}
}

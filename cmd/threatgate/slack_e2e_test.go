package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/adapters/slack"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

// Slack worked end to end through serve's own wiring: the GitLab webhook
// intake, worker, engine, real bbolt store and dispatcher, the Slack
// endpoints with correctly signed requests, and the Slack sink through the
// real slack-go client against a fake Slack Web API that records every
// call.

const slackPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    checklist: [data-sensitivity]
    inform: [announce]
groups:
  appsec: {members: [alice, bob]}
  announce: {members: [dave], slack_channel: C0ANN}
people:
  - {gitlab: ann, slack: U0ANN, email: ann@example.com}
  - {gitlab: alice, slack: U0ALICE, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
intake:
  - {id: summary, prompt: 'What is wrong?'}
`

const (
	slackSecret = "slack-signing-secret-5e1"
	slackTeam   = "T0TEAM"
)

// slackCall is one Web API call the fake Slack received.
type slackCall struct {
	Method string
	Form   url.Values
	JSON   map[string]any
}

// slackFake is a fake Slack Web API: it answers what threatgate calls,
// records every call, and fails on demand.
type slackFake struct {
	mu     sync.Mutex
	calls  []slackCall
	ts     int
	team   string
	faults []slackFault
	srv    *httptest.Server
}

type slackFault struct {
	method string
	times  int
	status int
	header http.Header
}

func newSlackFake(t *testing.T, team string) *slackFake {
	f := &slackFake{team: team}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *slackFake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := slackCall{Method: strings.TrimPrefix(r.URL.Path, "/")}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		json.Unmarshal(body, &c.JSON)
	} else {
		c.Form, _ = url.ParseQuery(string(body))
	}
	f.mu.Lock()
	for i := range f.faults {
		if ft := &f.faults[i]; ft.times > 0 && strings.HasPrefix(c.Method, ft.method) {
			ft.times--
			f.mu.Unlock()
			for k, v := range ft.header {
				w.Header()[k] = v
			}
			w.WriteHeader(ft.status)
			return
		}
	}
	f.calls = append(f.calls, c)
	f.ts++
	ts := fmt.Sprintf("1700000%03d.000100", f.ts)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch c.Method {
	case "auth.test":
		fmt.Fprintf(w, `{"ok":true,"team_id":%q,"team":"Acme","user_id":"U0BOT","user":"threatgate"}`, f.team)
	case "chat.postMessage":
		fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, c.Form.Get("channel"), ts)
	case "chat.update":
		fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, c.Form.Get("channel"), c.Form.Get("ts"))
	case "chat.getPermalink":
		io.WriteString(w, `{"ok":true,"permalink":"https://acme.slack.com/archives/C0ESC/p1700000001000100"}`)
	case "conversations.replies", "conversations.history":
		io.WriteString(w, `{"ok":true,"messages":[]}`)
	case "views.open":
		io.WriteString(w, `{"ok":true,"view":{"id":"V1"}}`)
	default:
		io.WriteString(w, `{"ok":true}`)
	}
}

// fail makes the next n calls of method answer status.
func (f *slackFake) fail(method string, n, status int, header http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, slackFault{method: method, times: n, status: status, header: header})
}

func (f *slackFake) Calls(method string) []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []slackCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// posts returns the chat.postMessage calls into channel (and, with
// thread, into that thread).
func (f *slackFake) posts(channel, thread string) []slackCall {
	var out []slackCall
	for _, c := range f.Calls("chat.postMessage") {
		if c.Form.Get("channel") == channel && (thread == "" || c.Form.Get("thread_ts") == thread) {
			out = append(out, c)
		}
	}
	return out
}

type slackRig struct {
	*secRig
	slack *slackFake
	app   *slack.App
}

func newSlackRig(t *testing.T) *slackRig {
	t.Helper()
	clock := bottest.NewClock(time.Now().UTC().Truncate(time.Second))
	gl := gitlabtest.New(t)
	gl.SetNow(clock.Now)
	for name, id := range secUsers {
		gl.SetUser(name, id)
	}
	fake := newSlackFake(t, slackTeam)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "threatgate.yaml")
	os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:0\ndata_dir: data\ngitlab:\n  url: "+gl.URL+"\n  status_name: "+secStatus+
		"\nslack:\n  api_url: "+fake.srv.URL+"/\n  team_id: "+slackTeam+"\n  channel: C0ESC\n  security_channel: C0SEC\nweb:\n  dashboard_token_env: TG_DASH\n"), 0o600)
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken,
		"THREATGATE_SLACK_BOT_TOKEN": "xoxb-test", "THREATGATE_SLACK_SIGNING_SECRET": slackSecret}
	sec, _, err := cfg.LoadSecrets(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Load("slack.yaml", []byte(slackPolicy))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.DataDir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, sec, pol, db, clock, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.slack.Drain()
		if _, err := db.Verify(context.Background()); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		db.Close()
	})
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	return &slackRig{secRig: &secRig{t: t, gl: gl, s: s, db: db, clock: clock, base: srv.URL, ours: map[string]bool{}}, slack: fake, app: s.slack}
}

// signed posts a Slack request to path, signed as Slack signs it.
func (r *slackRig) signed(path, body string, client *http.Client) (*http.Response, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.base+path, strings.NewReader(body))
	ts, sig := slack.Sign(slackSecret, []byte(body), r.clock.Now())
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sig)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (r *slackRig) slash(user, command, text string, client *http.Client) string {
	r.t.Helper()
	r.seq++
	body := url.Values{"team_id": {slackTeam}, "channel_id": {"C0ESC"}, "user_id": {user}, "command": {command}, "text": {text},
		"trigger_id": {fmt.Sprintf("trig-%d", r.seq)}, "response_url": {"https://hooks.slack.com/commands/x"}}.Encode()
	resp, b := r.signed(slack.PathCommands, body, client)
	if resp.StatusCode != 200 {
		r.t.Fatalf("%s %s: %d %s", command, text, resp.StatusCode, b)
	}
	var a struct{ Text string }
	json.Unmarshal([]byte(b), &a)
	return a.Text
}

func (r *slackRig) interact(payload map[string]any) string {
	r.t.Helper()
	raw, _ := json.Marshal(payload)
	resp, b := r.signed(slack.PathInteractions, url.Values{"payload": {string(raw)}}.Encode(), nil)
	if resp.StatusCode != 200 {
		r.t.Fatalf("interaction: %d %s", resp.StatusCode, b)
	}
	return b
}

func (r *slackRig) reply(eventID, user, thread, text string) {
	r.t.Helper()
	raw, _ := json.Marshal(map[string]any{"type": "event_callback", "team_id": slackTeam, "event_id": eventID,
		"event": map[string]any{"type": "message", "user": user, "text": text, "channel": "C0ESC", "ts": "1700009999.000" + strconv.Itoa(len(eventID)), "thread_ts": thread}})
	if resp, b := r.signed(slack.PathEvents, string(raw), nil); resp.StatusCode != 200 {
		r.t.Fatalf("event: %d %s", resp.StatusCode, b)
	}
	r.app.Drain()
}

// TestSlackEndToEnd: an escalation opens as a card with buttons and a
// thread; the artifact handed in as a thread reply is recorded and the
// card is edited in place; the Approve button opens the checklist modal,
// whose submission is counted; the gate goes green.
func TestSlackEndToEnd(t *testing.T) {
	r := newSlackRig(t)
	r.mr(1, shaA, "src/auth/login.go", "token := mint()")

	parents := r.slack.posts("C0ESC", "")
	var parent slackCall
	for _, p := range parents {
		if p.Form.Get("thread_ts") == "" {
			if parent.Method != "" {
				t.Fatalf("two parent messages: %v", parents)
			}
			parent = p
		}
	}
	if parent.Method == "" || !strings.Contains(parent.Form.Get("blocks"), `"action_id":"threatgate:approve"`) {
		t.Fatalf("no parent card with buttons in C0ESC: %v", parents)
	}
	thread := r.s.slackThread(t, "ESC-1")
	posts := r.slack.posts("C0ESC", thread.TS)
	if len(posts) < 2 {
		t.Fatalf("thread posts: %v", posts)
	}
	asked := false
	for _, p := range posts {
		if strings.Contains(p.Form.Get("text"), "<@U0ANN>: ESC-1 needs threat-model") {
			asked = true
		}
	}
	if !asked {
		t.Errorf("the thread does not ask ann for the threat model: %v", posts)
	}
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") {
		t.Errorf("gate %q, want pending", g)
	}
	if n := len(r.slack.posts("C0ANN", "")); n != 1 {
		t.Errorf("the informed group's channel got %d messages, want 1", n)
	}

	// The artifact as a thread reply: recorded, the card edited in place.
	updates := len(r.slack.Calls("chat.update"))
	r.reply("Ev1", "U0ANN", thread.TS, "threat-model: https://wiki.example.com/tm/1")
	r.settle()
	if e := r.esc(1); len(e.Artifacts) != 1 || e.State != bot.StateInReview {
		t.Fatalf("after the reply: state %s artifacts %+v", e.State, e.Artifacts)
	}
	if len(r.slack.Calls("chat.update")) <= updates {
		t.Errorf("the card was not edited")
	}
	tops := 0
	for _, p := range r.slack.posts("C0ESC", "") {
		if p.Form.Get("thread_ts") == "" {
			tops++
		}
	}
	if tops != 1 {
		t.Fatalf("%d parent messages: the card was reposted instead of edited", tops)
	}
	if n := len(r.slack.posts("C0ANN", "")); n != 1 {
		t.Errorf("the informed group's channel got %d messages, want 1 (edited in place)", n)
	}

	// The Approve button: a modal with the checklist; its submission counts.
	r.interact(map[string]any{"type": "block_actions", "team": map[string]any{"id": slackTeam}, "user": map[string]any{"id": "U0ALICE"},
		"trigger_id": "trig-btn", "channel": map[string]any{"id": "C0ESC"}, "message": map[string]any{"ts": thread.TS},
		"actions": []map[string]any{{"action_id": "threatgate:approve", "block_id": "threatgate:actions", "value": "ESC-1@" + shaA, "type": "button"}}})
	opens := r.slack.Calls("views.open")
	if len(opens) != 1 || !strings.Contains(fmt.Sprint(opens[0].JSON), "check:data-sensitivity") {
		t.Fatalf("views.open: %+v", opens)
	}
	meta := opens[0].JSON["view"].(map[string]any)["private_metadata"].(string)
	r.interact(map[string]any{"type": "view_submission", "team": map[string]any{"id": slackTeam}, "user": map[string]any{"id": "U0ALICE"},
		"view": map[string]any{"id": "V1", "callback_id": "threatgate:modal", "private_metadata": meta, "state": map[string]any{"values": map[string]any{
			"check:data-sensitivity": map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "no PII"}},
			"text":                   map[string]any{"v": map[string]any{"type": "plain_text_input", "value": "token minting reviewed"}}}}}})
	r.app.Drain()
	r.settle()
	if e := r.esc(1); e.State != bot.StateApproved || len(e.Approvals) != 1 || e.Approvals[0].By != "alice" {
		t.Fatalf("after the modal: state %s approvals %+v", e.State, e.Approvals)
	}
	if g := r.gate(shaA); !strings.HasPrefix(g, "success:") {
		t.Errorf("gate %q, want success", g)
	}
	last := r.slack.Calls("chat.update")
	if !strings.Contains(last[len(last)-1].Form.Get("blocks"), "approved") {
		t.Errorf("the card does not show the approval: %s", last[len(last)-1].Form.Get("blocks"))
	}
	// The MR's author cannot approve, and is told why, alone.
	if got := r.slash("U0ANN", "/approve", "ESC-1 --check data-sensitivity=none", nil); !strings.Contains(got, "you wrote") && !strings.Contains(got, "approved") {
		t.Errorf("author's /approve: %q", got)
	}
}

// slackThread returns the Slack thread of an escalation.
func (s *server) slackThread(t *testing.T, esc string) bot.MessageRef {
	t.Helper()
	ref, err := s.db.ThreadRef(context.Background(), esc, slack.SinkName)
	if err != nil || ref.TS == "" {
		t.Fatalf("thread of %s on slack: %+v, %v", esc, ref, err)
	}
	return ref
}

// TestSlackOutageDelaysOnlySlack: Slack answering 429 and then 500 for a
// while does not hold back the GitLab gate; once Slack is back, every
// message is delivered exactly once.
func TestSlackOutageDelaysOnlySlack(t *testing.T) {
	r := newSlackRig(t)
	r.slack.fail("chat.", 1, http.StatusTooManyRequests, http.Header{"Retry-After": {"30"}})
	r.slack.fail("chat.", 4, http.StatusInternalServerError, nil)
	r.mr(1, shaA, "src/auth/login.go", "token := mint()")
	if g := r.gate(shaA); !strings.HasPrefix(g, "pending:") {
		t.Fatalf("gate %q during the Slack outage, want pending at once", g)
	}
	// Time passes; the dispatcher retries until Slack is back.
	for range 30 {
		r.clock.Advance(time.Minute)
		r.settle()
	}
	if recs, _ := r.db.PendingEffects(context.Background(), 0); len(recs) > 0 {
		for _, rec := range recs {
			t.Logf("waiting: %s %s attempts %d next %s err %s", rec.Effect.Sink, rec.Effect.Kind, rec.Attempts, rec.NextAttempt, rec.LastError)
		}
	}
	thread := r.s.slackThread(t, "ESC-1")
	parents := 0
	for _, p := range r.slack.posts("C0ESC", "") {
		if p.Form.Get("thread_ts") == "" {
			parents++
		}
	}
	if parents != 1 {
		t.Errorf("%d parent messages, want 1", parents)
	}
	seen := map[string]int{}
	for _, p := range r.slack.posts("C0ESC", thread.TS) {
		seen[p.Form.Get("metadata")]++
	}
	if len(seen) < 2 {
		t.Errorf("thread posts after the outage: %v", seen)
	}
	for m, n := range seen {
		if n != 1 {
			t.Errorf("posted %d times: %s", n, m)
		}
	}
	if n := len(r.slack.posts("C0ANN", "")); n != 1 {
		t.Errorf("the informed group got %d messages, want 1", n)
	}
	r.slack.mu.Lock()
	defer r.slack.mu.Unlock()
	for _, ft := range r.slack.faults {
		if ft.times != 0 {
			t.Errorf("the outage was not exercised: %d %d answers left", ft.times, ft.status)
		}
	}
}

// TestSlackCommandAnsweredWhileGitLabHangs: a slash command is answered
// within Slack's 3 seconds while GitLab does not answer at all: nothing
// on the command's path waits for GitLab.
func TestSlackCommandAnsweredWhileGitLabHangs(t *testing.T) {
	r := newSlackRig(t)
	r.mr(1, shaA, "src/auth/login.go", "token := mint()")
	r.gl.Fail(gitlabtest.Fault{Times: 1000, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // the dispatcher, stuck on GitLab
		defer close(done)
		r.s.dispatcher.DeliverDue(ctx)
	}()
	defer func() { cancel(); <-done }()
	client := &http.Client{Timeout: 3 * time.Second}
	got := r.slash("U0ALICE", "/escalate", "shop/api!2 --tier T2 odd token handling\nsummary: tokens are logged", client)
	if !strings.Contains(got, "Escalated shop/api!2") {
		t.Fatalf("/escalate answered %q", got)
	}
	if got := r.slash("U0ALICE", "/threatgate", "dissent ESC-1 unsure", client); !strings.Contains(got, "Dissent recorded") {
		t.Errorf("dissent answered %q", got)
	}
}

// TestSlackServeChecksTheToken: a token Slack refuses, or one of another
// workspace, stops serve with a message that says which.
func TestSlackServeChecksTheToken(t *testing.T) {
	fake := newSlackFake(t, "T0OTHER")
	cfg := Config{Listen: "127.0.0.1:0", Slack: &SlackConfig{APIURL: fake.srv.URL + "/", TeamID: slackTeam, Channel: "C0ESC", BotTokenEnv: "X"}}
	pol, _ := policies.Load("p.yaml", []byte(slackPolicy))
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sec := Secrets{SlackBotToken: "xoxb-1", SlackSigningSecret: "s"}
	_, err = newServer(cfg, sec, pol, db, bottest.NewClock(time.Now()), slog.New(slog.DiscardHandler), extras{})
	if err == nil || !strings.Contains(err.Error(), "T0OTHER") || !strings.Contains(err.Error(), "team_id is "+slackTeam) {
		t.Errorf("another workspace's token: %v", err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
	}))
	defer bad.Close()
	cfg.Slack.APIURL = bad.URL + "/"
	_, err = newServer(cfg, sec, pol, db, bottest.NewClock(time.Now()), slog.New(slog.DiscardHandler), extras{})
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || !strings.Contains(err.Error(), "environment variable X") || strings.Contains(err.Error(), "xoxb-1") {
		t.Errorf("a refused token: %v", err)
	}
}

// TestSlackMentionInjection: a hostile MR title and a hostile rationale
// reach Slack inert: no broadcast, no mention and no link but the ones
// threatgate makes, in every message posted or edited.
func TestSlackMentionInjection(t *testing.T) {
	r := newSlackRig(t)
	const evil = "<!channel> <!here|here> <@U0EVIL> <#C0EVIL> <https://evil.example|click> @everyone"
	r.gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 1, Title: "fix " + evil, Author: "ann", SHA: shaA, HeadPipelineID: 501, UpdatedAt: r.clock.Now(),
		Diffs: []gitlabtest.Diff{{OldPath: "src/auth/a.go", NewPath: "src/auth/a.go", Diff: "@@ -1 +1,2 @@\n x\n+" + evil + "\n"}}})
	r.hook(1, "open")
	thread := r.s.slackThread(t, "ESC-1")
	r.reply("EvX1", "U0ALICE", thread.TS, "<@U0BOT> dissent "+evil)
	r.reply("EvX2", "U0ANN", thread.TS, "threat-model: "+evil)
	r.settle()
	if e := r.esc(1); len(e.Dissents) != 1 || len(e.Artifacts) != 1 {
		t.Fatalf("the hostile replies were not recorded: %+v %+v", e.Dissents, e.Artifacts)
	}
	// threatgate's own tokens: its mentions, date tokens and MR links.
	own := regexp.MustCompile(`<@U0(ALICE|ANN)>|<!date\^\d+\^[^|>]*\|[^>]*>|<https?://127\.0\.0\.1:\d+/[^|>]*\|[^>]*>|<https://acme\.slack\.com/[^|>]*\|[^>]*>|<#C0ESC>`)
	checked, escaped := 0, 0
	for _, method := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
		for _, c := range r.slack.Calls(method) {
			for _, field := range []string{"text", "blocks"} {
				v := c.Form.Get(field)
				if field == "blocks" {
					// Decode the JSON string escapes (\u003c) before looking.
					var blocks any
					if json.Unmarshal([]byte(v), &blocks) == nil {
						b, _ := json.Marshal(blocks)
						v = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
					}
				}
				escaped += strings.Count(v, "&lt;!channel&gt;")
				rest := own.ReplaceAllString(v, "")
				if strings.Contains(rest, "<") || regexp.MustCompile(`(?i)(^|[^\x{200d}])@(channel|here|everyone)`).MatchString(rest) {
					t.Errorf("%s %s carries markup threatgate did not write: %s", method, field, v)
				}
				checked++
			}
		}
	}
	if checked < 10 || escaped < 3 {
		t.Errorf("only %d message fields checked, the hostile text shown (escaped) %d times", checked, escaped)
	}
}

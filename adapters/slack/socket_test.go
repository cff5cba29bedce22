package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// socketWait bounds every wait on the fake Slack; nothing sleeps.
const socketWait = 10 * time.Second

// socketPolicy maps ann (who files) and alice (appsec) to Slack users.
const socketPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    decision: 48h
groups:
  appsec: {members: [alice]}
people:
  - {gitlab: ann, slack: U0ANN, email: ann@example.com}
  - {gitlab: alice, slack: U0ALICE, email: alice@example.com}
`

// socketThread is the escalation's thread in Slack.
var socketThread = bot.MessageRef{Channel: "C0ESC", TS: "1700000000.000100"}

// fakeSocketSlack is Slack for Socket Mode: apps.connections.open, the
// websocket it points to, chat.postEphemeral and a response_url (/hook).
// Everything sent to it is recorded.
type fakeSocketSlack struct {
	srv   *httptest.Server
	peers chan *socketPeer // each websocket connection, once hello is sent
	posts chan string      // chat.postEphemeral texts
	hooks chan string      // response_url texts

	mu     sync.Mutex
	refuse string   // apps.connections.open answers this error when set
	auth   []string // Authorization of each apps.connections.open
	conns  []*websocket.Conn
}

// socketPeer is one websocket connection, seen from Slack's side.
type socketPeer struct {
	conn   *websocket.Conn
	acks   chan socketAck // every message the app sent, in order
	closed chan struct{}  // the app closed the connection
	got    map[string][]socketAck
}

type socketAck struct {
	EnvelopeID string          `json:"envelope_id"`
	Payload    json.RawMessage `json:"payload"`
}

func newFakeSocketSlack(t *testing.T) *fakeSocketSlack {
	f := &fakeSocketSlack{peers: make(chan *socketPeer, 4), posts: make(chan string, 100), hooks: make(chan string, 10)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		refuse := f.refuse
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if refuse != "" {
			fmt.Fprintf(w, `{"ok":false,"error":%q}`, refuse)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"url":"ws://%s/ws"}`, r.Host)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, conn)
		f.mu.Unlock()
		if err := conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
			"connection_info": map[string]any{"app_id": "A0APP"}}); err != nil {
			return
		}
		p := &socketPeer{conn: conn, acks: make(chan socketAck, 100), closed: make(chan struct{}), got: map[string][]socketAck{}}
		f.peers <- p
		defer close(p.closed)
		for {
			var a socketAck
			if err := conn.ReadJSON(&a); err != nil {
				return
			}
			p.acks <- a
		}
	})
	mux.HandleFunc("POST /chat.postEphemeral", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.posts <- r.Form.Get("text")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true,"message_ts":"1700000009.000100"}`)
	})
	mux.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		var m sl.WebhookMessage
		json.NewDecoder(r.Body).Decode(&m)
		f.hooks <- m.Text
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.srv.Close()
	})
	return f
}

// client is the app's Web API client against the fake.
func (f *fakeSocketSlack) client(opts ...sl.Option) *sl.Client {
	return sl.New("xoxb-test", append([]sl.Option{sl.OptionAPIURL(f.srv.URL + "/")}, opts...)...)
}

func (f *fakeSocketSlack) accept(t *testing.T) *socketPeer {
	t.Helper()
	select {
	case p := <-f.peers:
		return p
	case <-time.After(socketWait):
		t.Fatal("the app did not open the websocket")
		return nil
	}
}

// send writes an envelope of kind with payload to the app.
func (p *socketPeer) send(t *testing.T, id, kind string, payload any) {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]any{"envelope_id": id, "type": kind, "payload": json.RawMessage(raw), "accepts_response_payload": kind != "events_api"}
	if err := p.conn.WriteJSON(env); err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
}

// ack waits for the ack of envelope id.
func (p *socketPeer) ack(t *testing.T, id string) socketAck {
	t.Helper()
	if as := p.got[id]; len(as) > 0 {
		return as[0]
	}
	deadline := time.After(socketWait)
	for {
		select {
		case a := <-p.acks:
			p.got[a.EnvelopeID] = append(p.got[a.EnvelopeID], a)
			if a.EnvelopeID == id {
				return a
			}
		case <-deadline:
			t.Fatalf("no ack for envelope %s", id)
		}
	}
}

// acked waits for the app to close the connection and returns how many
// times each envelope was acknowledged.
func (p *socketPeer) acked(t *testing.T) map[string]int {
	t.Helper()
	select {
	case <-p.closed:
	case <-time.After(socketWait):
		t.Fatal("the app did not close the websocket")
	}
	for {
		select {
		case a := <-p.acks:
			p.got[a.EnvelopeID] = append(p.got[a.EnvelopeID], a)
		default:
			n := map[string]int{}
			for id, as := range p.got {
				n[id] = len(as)
			}
			return n
		}
	}
}

// ephemeralText is the text of an ack's ephemeral answer.
func ephemeralText(t *testing.T, a socketAck) string {
	t.Helper()
	var e ephemeral
	if err := json.Unmarshal(a.Payload, &e); err != nil || e.ResponseType != "ephemeral" {
		t.Fatalf("ack %s payload %s: want an ephemeral answer (%v)", a.EnvelopeID, a.Payload, err)
	}
	return e.Text
}

func waitText(t *testing.T, what string, ch chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(socketWait):
		t.Fatalf("nothing sent to %s", what)
		return ""
	}
}

// lockedBuffer is a log destination tests read after the app stopped.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// socketRig is an app over a real store with one escalation whose Slack
// thread is socketThread.
type socketRig struct {
	rig  *testrig.Rig
	app  *App
	fake *fakeSocketSlack
	logs *lockedBuffer
	esc  string
}

func newSocketRig(t *testing.T, engine func(*testrig.Rig) Engine) *socketRig {
	t.Helper()
	rig := testrig.NewRig(t, socketPolicy)
	ctx := context.Background()
	in := bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
		IID: 12, PathWithNamespace: "shop/api", Title: "session rework", TargetBranch: "main",
		SHA: "aaa111", UpdatedAt: rig.Clock.Now(), Author: policies.User{Username: "ann"},
		Changes: []policies.Change{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go"}},
	}}}
	if _, err := rig.Engine.Handle(ctx, in); err != nil {
		t.Fatal(err)
	}
	open, err := rig.DB.FindOpen(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open escalations: %d, %v; want 1", len(open), err)
	}
	esc := open[0].ID
	if err := rig.DB.SetThreadRef(ctx, esc, SinkName, socketThread); err != nil {
		t.Fatal(err)
	}
	fake := newFakeSocketSlack(t)
	u, _ := url.Parse(fake.srv.URL)
	logs := &lockedBuffer{}
	var eng Engine = rig.Engine
	if engine != nil {
		eng = engine(rig)
	}
	app := NewApp(&App{
		Client: fake.client(sl.OptionAppLevelToken("xapp-test")), Engine: eng, Store: rig.DB, Clock: rig.Clock,
		Log:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TeamID: "T0TEAM", BotUserID: "U0BOT", Channel: "C0ESC", ResponseHosts: []string{u.Host},
	})
	return &socketRig{rig: rig, app: app, fake: fake, logs: logs, esc: esc}
}

// run starts RunSocket; stop cancels it and returns what it returned.
func (r *socketRig) run(t *testing.T, token bot.Secret) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.app.RunSocket(ctx, token) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(socketWait):
				err = fmt.Errorf("RunSocket did not return after its context was cancelled")
			}
			r.app.Drain()
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// dissents are the escalation's recorded dissents.
func (r *socketRig) dissents(t *testing.T) []string {
	t.Helper()
	evs, err := r.rig.DB.Events(context.Background(), r.esc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Kind == bot.EventDissent {
			out = append(out, e.Actor+": "+e.Data.Text)
		}
	}
	return out
}

// threadReply is an Events API callback: user says text in the
// escalation's thread.
func threadReply(team, eventID, user, text string) map[string]any {
	return map[string]any{
		"token": "unused", "team_id": team, "api_app_id": "A0APP", "type": "event_callback",
		"event_id": eventID, "event_time": 1700000001,
		"event": map[string]any{"type": "message", "channel": socketThread.Channel, "user": user, "text": text,
			"ts": "1700000001.000200", "thread_ts": socketThread.TS, "channel_type": "channel", "event_ts": "1700000001.000200"},
	}
}

func slashCommand(team, user, command, text string) map[string]any {
	return map[string]any{"team_id": team, "channel_id": "C0ESC", "user_id": user, "command": command, "text": text,
		"response_url": "", "trigger_id": ""}
}

// TestSocketMode: over the socket, a thread reply reaches the handler the
// HTTP endpoint uses and is recorded; a slash command is answered in its
// ack; a view submission's errors go back in its ack; a retried event,
// another workspace's event and an event socketmode cannot parse change
// nothing; every envelope is acknowledged exactly once, and RunSocket
// returns nil when its context ends.
func TestSocketMode(t *testing.T) {
	r := newSocketRig(t, nil)
	stop := r.run(t, "xapp-test")
	p := r.fake.accept(t)

	// Another workspace first: acknowledged, refused, nothing recorded.
	p.send(t, "e0", "events_api", threadReply("T0OTHER", "Ev0", "U0ALICE", "/threatgate dissent foreign"))
	if a := p.ack(t, "e0"); len(a.Payload) != 0 {
		t.Errorf("foreign event ack payload = %s, want none", a.Payload)
	}

	// (1) A thread reply: acked at once, then recorded by the engine.
	p.send(t, "e1", "events_api", threadReply("T0TEAM", "Ev1", "U0ALICE", "/threatgate dissent not convinced"))
	if a := p.ack(t, "e1"); len(a.Payload) != 0 {
		t.Errorf("event ack payload = %s, want none", a.Payload)
	}
	if got := waitText(t, "chat.postEphemeral", r.fake.posts); !strings.Contains(got, "Dissent recorded on "+r.esc) {
		t.Errorf("reply in the thread = %q, want the dissent confirmed", got)
	}
	// Slack retries the event (same event id, new envelope): acked, not
	// recorded again.
	p.send(t, "e1-retry", "events_api", threadReply("T0TEAM", "Ev1", "U0ALICE", "/threatgate dissent not convinced"))
	p.ack(t, "e1-retry")

	// (3) Slash commands: the answer is the ack's payload.
	p.send(t, "c1", "slash_commands", slashCommand("T0TEAM", "U0STRANGER", "/approve", r.esc))
	if got := ephemeralText(t, p.ack(t, "c1")); !strings.Contains(got, "not mapped") || !strings.Contains(got, "`slack: U0STRANGER`") {
		t.Errorf("/approve by an unmapped user answered %q, want the not-mapped text", got)
	}
	p.send(t, "c2", "slash_commands", slashCommand("T0TEAM", "U0STRANGER", "/threatgate", "help"))
	if got := ephemeralText(t, p.ack(t, "c2")); !strings.Contains(got, "/threatgate dissent") {
		t.Errorf("/threatgate help answered %q, want the verbs listed", got)
	}
	p.send(t, "c3", "slash_commands", slashCommand("T0OTHER", "U0ALICE", "/threatgate", "help"))
	if a := p.ack(t, "c3"); len(a.Payload) != 0 {
		t.Errorf("foreign command ack payload = %s, want none", a.Payload)
	}

	// A modal submitted by an unmapped user: the errors are the ack.
	p.send(t, "i1", "interactive", map[string]any{
		"type": "view_submission", "team": map[string]any{"id": "T0TEAM"}, "user": map[string]any{"id": "U0STRANGER"},
		"view": map[string]any{"id": "V1", "callback_id": callbackView, "private_metadata": `{"v":"approve","e":"` + r.esc + `"}`,
			"state": map[string]any{"values": map[string]any{}}},
	})
	var sub struct {
		Action string            `json:"response_action"`
		Errors map[string]string `json:"errors"`
	}
	if a := p.ack(t, "i1"); json.Unmarshal(a.Payload, &sub) != nil || sub.Action != "errors" || !strings.Contains(sub.Errors[blockText], "not mapped") {
		t.Errorf("view submission ack payload = %s, want the not-mapped error under %s", a.Payload, blockText)
	}

	// An events_api envelope socketmode cannot parse is still acked.
	p.send(t, "e2", "events_api", map[string]any{"team_id": "T0TEAM", "type": "event_callback", "event_id": "Ev2",
		"event": map[string]any{"type": "no_such_event"}})
	p.ack(t, "e2")

	// (5) RunSocket returns nil when its context ends, and waits for the
	// requests it is handling.
	if err := stop(); err != nil {
		t.Fatalf("RunSocket = %v, want nil", err)
	}

	// (2) Every envelope acknowledged exactly once.
	got := p.acked(t)
	for _, id := range []string{"e0", "e1", "e1-retry", "c1", "c2", "c3", "i1", "e2"} {
		if got[id] != 1 {
			t.Errorf("envelope %s acknowledged %d times, want 1", id, got[id])
		}
		delete(got, id)
	}
	if len(got) != 0 {
		t.Errorf("acks for envelopes never sent: %v", got)
	}

	// (1, 4) One dissent, alice's, recorded once; none from the other
	// workspace.
	if got, want := r.dissents(t), []string{"alice: not convinced"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("dissents = %q, want %q", got, want)
	}
	select {
	case s := <-r.fake.posts:
		t.Errorf("a second reply in the thread: %q", s)
	default:
	}

	r.fake.mu.Lock()
	auth := r.fake.auth
	r.fake.mu.Unlock()
	if len(auth) != 1 || auth[0] != "Bearer xapp-test" {
		t.Errorf("apps.connections.open Authorization = %q, want the app-level token once", auth)
	}
	logs := r.logs.String()
	for _, secret := range []string{"xapp-test", "xoxb-test", "not convinced"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	for _, w := range []string{"another workspace", "connected", "unreadable slack request"} {
		if !strings.Contains(logs, w) {
			t.Errorf("the log does not say %q:\n%s", w, logs)
		}
	}
}

// trapEngine is the rig's engine, except that Policy panics while traps
// are left, and Handle waits for gate to close (when set) and answers
// reply (when set) without deciding.
type trapEngine struct {
	Engine
	traps atomic.Int32
	reply string
	gate  chan struct{}
}

func (e *trapEngine) Policy() *policies.Policy {
	if e.traps.Add(-1) >= 0 {
		panic("trapped")
	}
	return e.Engine.Policy()
}

func (e *trapEngine) Handle(ctx context.Context, in bot.Input) (bot.Reply, error) {
	if e.gate != nil {
		<-e.gate
	}
	if e.reply != "" {
		return bot.Reply{Text: e.reply}, nil
	}
	return e.Engine.Handle(ctx, in)
}

// TestSocketModePanic: a panic while handling a request is logged, the
// request acknowledged once (a command with an apology), and the socket
// goes on serving.
func TestSocketModePanic(t *testing.T) {
	trap := &trapEngine{}
	r := newSocketRig(t, func(rig *testrig.Rig) Engine { trap.Engine = rig.Engine; return trap })
	stop := r.run(t, "xapp-test")
	p := r.fake.accept(t)

	trap.traps.Store(1)
	p.send(t, "c1", "slash_commands", slashCommand("T0TEAM", "U0ALICE", "/threatgate", "help"))
	if got := ephemeralText(t, p.ack(t, "c1")); !strings.Contains(got, "internal error") {
		t.Errorf("a panicking command answered %q, want the internal error", got)
	}
	p.send(t, "c2", "slash_commands", slashCommand("T0TEAM", "U0ALICE", "/threatgate", "help"))
	if got := ephemeralText(t, p.ack(t, "c2")); !strings.Contains(got, "/threatgate dissent") {
		t.Errorf("the next command answered %q, want help", got)
	}
	trap.traps.Store(1)
	p.send(t, "e1", "events_api", threadReply("T0TEAM", "Ev1", "U0ALICE", "/threatgate dissent not convinced"))
	p.ack(t, "e1")

	if err := stop(); err != nil {
		t.Fatalf("RunSocket = %v, want nil", err)
	}
	for id, n := range p.acked(t) {
		if n != 1 {
			t.Errorf("envelope %s acknowledged %d times, want 1", id, n)
		}
	}
	if n := strings.Count(r.logs.String(), "slack request panicked"); n != 2 {
		t.Errorf("%d panics logged, want 2:\n%s", n, r.logs.String())
	}
	if got := r.dissents(t); len(got) != 0 {
		t.Errorf("dissents = %q after a panic, want none", got)
	}
}

// TestSocketModeAcksEventFirst: an event is acknowledged before the
// engine is done with it, however long that takes.
func TestSocketModeAcksEventFirst(t *testing.T) {
	gate := make(chan struct{})
	r := newSocketRig(t, func(rig *testrig.Rig) Engine { return &trapEngine{Engine: rig.Engine, gate: gate} })
	r.app.AckWithin = 2 * socketWait // the engine's answer is awaited past the test's deadline
	r.run(t, "xapp-test")
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(gate) }) }) // before RunSocket is stopped
	p := r.fake.accept(t)

	p.send(t, "e1", "events_api", threadReply("T0TEAM", "Ev1", "U0ALICE", "/threatgate dissent not convinced"))
	p.ack(t, "e1") // while the engine is held
	release.Do(func() { close(gate) })
	if got := waitText(t, "chat.postEphemeral", r.fake.posts); !strings.Contains(got, "Dissent recorded") {
		t.Errorf("reply in the thread = %q, want the dissent confirmed", got)
	}
}

// TestSocketModeLargeAnswer: an answer too large for an ack goes to the
// command's response_url, and the ack carries no payload.
func TestSocketModeLargeAnswer(t *testing.T) {
	big := strings.Repeat("a long answer ", 2000) // 28,000 bytes
	r := newSocketRig(t, func(rig *testrig.Rig) Engine { return &trapEngine{Engine: rig.Engine, reply: big} })
	r.run(t, "xapp-test")
	p := r.fake.accept(t)

	cmd := slashCommand("T0TEAM", "U0ALICE", "/threatgate", "help")
	cmd["response_url"] = r.fake.srv.URL + "/hook"
	p.send(t, "c1", "slash_commands", cmd)
	if a := p.ack(t, "c1"); len(a.Payload) != 0 {
		t.Errorf("ack payload is %d bytes, want none", len(a.Payload))
	}
	if got := waitText(t, "the response_url", r.fake.hooks); got != big {
		t.Errorf("response_url got %d bytes, want the %d-byte answer", len(got), len(big))
	}
}

// TestSocketModeRefusedToken: RunSocket uses the app-level token it is
// given (the client has none), and returns an error naming the fix when
// Slack refuses it.
func TestSocketModeRefusedToken(t *testing.T) {
	r := newSocketRig(t, nil)
	r.fake.mu.Lock()
	r.fake.refuse = "invalid_auth"
	r.fake.mu.Unlock()
	r.app.Client = r.fake.client() // no app-level token of its own

	errc := make(chan error, 1)
	go func() { errc <- r.app.RunSocket(context.Background(), "xapp-given") }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(socketWait):
		t.Fatal("RunSocket did not return when the token was refused")
	}
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || !strings.Contains(err.Error(), "xapp-") {
		t.Errorf("RunSocket = %v, want invalid_auth and the token to check", err)
	}
	if strings.Contains(err.Error(), "xapp-given") {
		t.Errorf("the error holds the token: %v", err)
	}
	r.fake.mu.Lock()
	defer r.fake.mu.Unlock()
	if len(r.fake.auth) != 1 || r.fake.auth[0] != "Bearer xapp-given" {
		t.Errorf("apps.connections.open Authorization = %q, want the given app-level token", r.fake.auth)
	}
}

package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

// homeNow is when the sample home tabs are rendered: two days before due.
var homeNow = due.Add(-48 * time.Hour)

// homeQueues are the queues with goldens (testdata/blocks/home/): a full
// one, a mapped person with nothing, and a Slack user the policy does not
// know (no person).
func homeQueues() map[string]bot.Queue {
	review := bot.QueueItem{ID: "ESC-7", Project: "g/p", MRIID: 1, Title: "Rotate sessions", Tier: "T3", TierName: "critical",
		State: bot.StateInReview, Urgent: true, DecisionDue: due, Waiting: []string{"alice", "bob", "carol"}}
	overdue := bot.QueueItem{ID: "ESC-3", Project: "g/q", MRIID: 4, Tier: "T2", TierName: "high",
		State: bot.StateInReview, DecisionDue: homeNow.Add(-3 * time.Hour), Overdue: true, Waiting: []string{"alice", "bob"}}
	artifacts := bot.QueueItem{ID: "ESC-9", Project: "g/p", MRIID: 12, Title: "New payment webhook", Tier: "T2", TierName: "high",
		State: bot.StateAwaitingArtifacts, DecisionDue: due.Add(24 * time.Hour), Missing: []string{"threat-model", "rollback-plan"}}
	deferred := bot.QueueItem{ID: "ESC-11", Project: "g/r", MRIID: 2, Title: "Bump TLS library", Tier: "T2", TierName: "high",
		State: bot.StateDeferred, DecisionDue: homeNow.Add(-time.Hour), Paused: true, DeferredUntil: due.Add(7 * 24 * time.Hour),
		Missing: []string{"threat-model"}}
	intake := bot.QueueItem{ID: "ESC-12", Project: "g/s", MRIID: 8, Title: "Token in logs", Tier: "T2", TierName: "high",
		State: bot.StateIntake, Urgent: true}
	disputed := bot.QueueItem{ID: "ESC-13", Project: "g/s", MRIID: 9, Tier: "T1", TierName: "elevated",
		State: bot.StateDisputed, DecisionDue: due.Add(time.Hour), WaitingOn: []string{"dave"}}
	review, overdue, artifacts, deferred, intake, disputed = queued(review), queued(overdue), queued(artifacts), queued(deferred), queued(intake), queued(disputed)
	return map[string]bot.Queue{
		"queue": {Person: "alice",
			Approve:   bot.QueueList{Items: []bot.QueueItem{overdue, review}, More: 3},
			Artifacts: bot.QueueList{Items: []bot.QueueItem{artifacts, deferred}},
			Intake:    bot.QueueList{Items: []bot.QueueItem{intake}},
			Own:       bot.QueueList{Items: []bot.QueueItem{disputed, artifacts, intake, deferred}},
		},
		"empty":    {Person: "carol"},
		"unmapped": {},
	}
}

// queued fills in what bot.QueueOf derives from the fields a fixture
// sets: the deadline as of homeNow (bot.DeadlineOf's fields) and whom it
// waits on (Waiting, unless the fixture names others).
func queued(it bot.QueueItem) bot.QueueItem {
	if !it.DecisionDue.IsZero() {
		it.Deadline = bot.Deadline{Has: true, Due: it.DecisionDue, Left: it.DecisionDue.Sub(homeNow), Overdue: it.Overdue, Paused: it.Paused, Until: it.DeferredUntil}
	}
	if it.WaitingOn == nil {
		it.WaitingOn = it.Waiting
	}
	return it
}

// TestRenderHomeGolden: the home tab, full, empty and for a Slack user
// the policy does not map, is its golden file in testdata/blocks/home.
func TestRenderHomeGolden(t *testing.T) {
	for name, q := range homeQueues() {
		t.Run(name, func(t *testing.T) {
			v := RenderHome(q, "U0VIEWER", homeNow, users)
			if v.Type != sl.VTHomeTab {
				t.Errorf("Type = %q, want %q", v.Type, sl.VTHomeTab)
			}
			checkLimits(t, v.Blocks.BlockSet)
			golden(t, "home/"+name, marshal(t, v.Blocks.BlockSet))
		})
	}
}

// TestRenderHomeSays: what each tab must say in words, beside its golden.
func TestRenderHomeSays(t *testing.T) {
	text := func(q bot.Queue) string {
		return strings.Join(strs(t, RenderHome(q, "U0VIEWER", homeNow, users).Blocks.BlockSet), "\n")
	}
	qs := homeQueues()
	for _, tt := range []struct {
		name     string
		q        bot.Queue
		want     []string
		wantNone []string
	}{
		{"queue", qs["queue"], []string{
			"Waiting for your approval (5)", "Artifacts asked of you (2)", "Intake to answer (1)", "Your merge requests under review (4)",
			":warning: *overdue by 3h*", "…and 3 more not shown", "missing `threat-model`, `rollback-plan`", "paused, overdue by 1h (deferred until <!date^",
			"waiting for the intake answers", "waiting on dave", "Queue of <@U01ALICE>",
		}, []string{"Nothing waits", "No artifacts"}},
		{"empty", qs["empty"], []string{
			"Waiting for your approval (0)", "_Nothing waits for your approval._", "_No artifacts are asked of you._",
			"_None of your merge requests is under security review._",
		}, []string{"Intake to answer", "more not shown"}},
		{"unmapped", qs["unmapped"], []string{"`slack: U0VIEWER`", "`people`", "not mapped"}, []string{"Waiting for your approval"}},
	} {
		got := text(tt.q)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: no %q in\n%s", tt.name, w, got)
			}
		}
		for _, w := range tt.wantNone {
			if strings.Contains(got, w) {
				t.Errorf("%s: %q in\n%s", tt.name, w, got)
			}
		}
	}
	// The approval list names nobody waited on (they are the viewer); the
	// viewer's own list does.
	q := qs["queue"]
	q.Own = bot.QueueList{}
	if got := text(q); strings.Contains(got, "waiting on") {
		t.Errorf("the approval list says whom it waits on:\n%s", got)
	}
	q = bot.Queue{Person: "alice", Own: bot.QueueList{Items: []bot.QueueItem{qs["queue"].Approve.Items[1]}}}
	if got := text(q); !strings.Contains(got, "waiting on <@U01ALICE>, <@U02BOB>, carol") {
		t.Errorf("the own list does not say whom it waits on:\n%s", got)
	}
}

// TestRenderHomeLimits: full lists of long, hostile text still make a view
// Slack accepts; the items that do not fit are counted with the rest.
func TestRenderHomeLimits(t *testing.T) {
	long := strings.Repeat("<!here> & long text ", 200)
	var items []bot.QueueItem
	var many []string
	for i := range 60 {
		many = append(many, long+strconv.Itoa(i))
	}
	for i := range bot.QueueLimit {
		items = append(items, queued(bot.QueueItem{ID: fmt.Sprintf("ESC-%d", i+1), Project: long, MRIID: int64(i), Title: long, Tier: long, TierName: long,
			State: bot.StateInReview, DecisionDue: due, Missing: many, Waiting: many}))
	}
	l := bot.QueueList{Items: items, More: 100}
	v := RenderHome(bot.Queue{Person: long, Approve: l, Artifacts: l, Intake: l, Own: l}, long, homeNow, users)
	checkLimits(t, v.Blocks.BlockSet)
	all := strings.Join(strs(t, v.Blocks.BlockSet), "\n")
	if !strings.Contains(all, "Waiting for your approval (150)") {
		t.Error("the approval header does not count every item")
	}
	// Each list shows what fits and counts the rest: shown + more = 150.
	for _, b := range v.Blocks.BlockSet {
		c, ok := b.(*sl.ContextBlock)
		if !ok {
			continue
		}
		for _, e := range c.ContextElements.Elements {
			s := e.(*sl.TextBlockObject).Text
			if n, ok := strings.CutPrefix(s, "…and "); ok {
				n, _, _ = strings.Cut(n, " ")
				if k, err := strconv.Atoi(n); err != nil || k <= 100 {
					t.Errorf("%q: want more than the 100 left out by the queue", s)
				}
			}
		}
	}
	unmapped := RenderHome(bot.Queue{}, long, homeNow, users)
	checkLimits(t, unmapped.Blocks.BlockSet)
}

// TestRenderHomeHostileTextIsInert: with hostile text in every string of
// the queue and as the Slack user id, the tab mentions only the people the
// mapping gives a well-formed Slack id.
func TestRenderHomeHostileTextIsInert(t *testing.T) {
	for name := range homeQueues() {
		for _, mapped := range []bool{true, false} {
			q := homeQueues()[name]
			poison(reflect.ValueOf(&q), map[string]bool{"State": true})
			for _, l := range []*bot.QueueList{&q.Approve, &q.Artifacts, &q.Intake, &q.Own} {
				for i := range l.Items {
					// The first item shows its (hostile) missing artifacts,
					// the others whom they wait on.
					l.Items[i].State = bot.StateInReview
					if i > 0 {
						l.Items[i].State, l.Items[i].Missing = bot.StateDeferred, nil
					}
					l.Items[i].Waiting = append(l.Items[i].Waiting, "alice", "mallory", "eve")
					l.Items[i].WaitingOn = append(l.Items[i].WaitingOn, "alice", "mallory", "eve")
				}
			}
			if !mapped {
				q.Person = ""
			}
			where := fmt.Sprintf("%s/mapped=%v", name, mapped)
			v := RenderHome(q, hostile, homeNow, hostileUsers)
			checkLimits(t, v.Blocks.BlockSet)
			all := strs(t, v.Blocks.BlockSet)
			for _, s := range all {
				inert(t, where, s)
			}
			if mapped && !strings.Contains(strings.Join(all, "\n"), "<@U01ALICE>, mallory, eve") {
				t.Errorf("%s: the own list does not mention alice and name mallory and eve plainly", where)
			}
		}
	}
}

// homePolicy maps ann and alice to Slack users; bob has none.
const homePolicy = `
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
  appsec: {members: [alice, bob]}
people:
  - {gitlab: ann, slack: U0ANN, email: ann@example.com}
  - {gitlab: alice, slack: U0ALICE, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
`

// fakeSlack is the Slack Web API's views.publish, recording each request;
// a user id in fail is refused with that error.
type fakeSlack struct {
	mu   sync.Mutex
	got  []published
	auth []string
	fail map[string]string
}

type published struct {
	UserID string `json:"user_id"`
	View   struct {
		Type   string    `json:"type"`
		Blocks sl.Blocks `json:"blocks"`
	} `json:"view"`
	raw string
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/views.publish" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var p published
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.raw = string(body)
	f.mu.Lock()
	f.got = append(f.got, p)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	msg := f.fail[p.UserID]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if msg != "" {
		fmt.Fprintf(w, `{"ok":false,"error":%q}`, msg)
		return
	}
	fmt.Fprint(w, `{"ok":true,"view":{"id":"V1","type":"home"}}`)
}

func (f *fakeSlack) take() []published {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.got
	f.got = nil
	return out
}

// TestPublishHome: opening the tab publishes the viewer's queue, read from
// a real store the engine wrote, through the real slack-go client.
func TestPublishHome(t *testing.T) {
	rig := testrig.NewRig(t, homePolicy)
	ctx := context.Background()
	mr := func(iid int64) bot.Input {
		return bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MRUpdate, MR: &policies.MergeRequest{
			IID: iid, PathWithNamespace: "shop/api", Title: fmt.Sprintf("session rework %d <!channel>", iid), TargetBranch: "main",
			SHA: "aaa111", UpdatedAt: rig.Clock.Now(), Author: policies.User{Username: "ann"},
			Changes: []policies.Change{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go"}},
		}}}
	}
	for _, iid := range []int64{12, 13} {
		if _, err := rig.Engine.Handle(ctx, mr(iid)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := bot.ParseCommand("/threatgate artifact threat-model https://wiki.example/tm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rig.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Surface: "slack", ExternalID: "U0ANN"},
		Command: &c, Escalation: "ESC-2"}); err != nil {
		t.Fatal(err)
	}

	fake := &fakeSlack{fail: map[string]string{"U0GONE": "user_not_found"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	app := NewApp(&App{Client: sl.New("xoxb-test", sl.OptionAPIURL(srv.URL+"/")), Engine: rig.Engine, Store: rig.DB, Clock: rig.Clock})

	publish := func(user string) published {
		t.Helper()
		if err := app.PublishHome(ctx, user); err != nil {
			t.Fatalf("PublishHome(%s): %v", user, err)
		}
		got := fake.take()
		if len(got) != 1 {
			t.Fatalf("PublishHome(%s): %d views.publish calls, want 1", user, len(got))
		}
		if got[0].UserID != user || got[0].View.Type != "home" {
			t.Errorf("published user_id %q, view type %q; want %q, home", got[0].UserID, got[0].View.Type, user)
		}
		return got[0]
	}
	sent := func(p published) string { return strings.Join(strs(t, p.View.Blocks.BlockSet), "\n") }

	// alice reviews: ESC-2 (artifact in) waits on her; ESC-1 waits on ann.
	alice := publish("U0ALICE")
	want := RenderHome(bot.QueueOf("alice", mustOpen(t, rig), rig.Policy, rig.Clock.Now()), "U0ALICE", rig.Clock.Now(), app.users(rig.Policy))
	if got, want := marshal(t, alice.View.Blocks.BlockSet), marshal(t, want.Blocks.BlockSet); string(got) != string(want) {
		t.Errorf("alice: sent blocks are not RenderHome of her queue:\n got %s\nwant %s", got, want)
	}
	for _, w := range []string{"Waiting for your approval (1)", "*ESC-2* `shop/api!13`", "Artifacts asked of you (0)", "Your merge requests under review (0)"} {
		if !strings.Contains(sent(alice), w) {
			t.Errorf("alice: no %q in\n%s", w, sent(alice))
		}
	}
	if strings.Contains(alice.raw, "ESC-1") || strings.Contains(alice.raw, "<!channel>") || strings.Contains(alice.raw, `\u003c!channel`) {
		t.Errorf("alice: ESC-1 or a live broadcast in %s", alice.raw)
	}

	// ann wrote both: she owes ESC-1's threat model and follows both.
	ann := sent(publish("U0ANN"))
	for _, w := range []string{"Waiting for your approval (0)", "Artifacts asked of you (1)", "*ESC-1* `shop/api!12`",
		"missing `threat-model`", "Your merge requests under review (2)", "waiting on <@U0ALICE>, bob", "decision due <!date^"} {
		if !strings.Contains(ann, w) {
			t.Errorf("ann: no %q in\n%s", w, ann)
		}
	}

	// Someone the policy does not map is told how to get mapped.
	if s := sent(publish("U0STRANGER")); !strings.Contains(s, "`slack: U0STRANGER`") || strings.Contains(s, "ESC-") {
		t.Errorf("unmapped user:\n%s", s)
	}

	if fake.auth[0] != "Bearer xoxb-test" {
		t.Errorf("Authorization = %q, want the bot token", fake.auth[0])
	}

	// Slack refusing the view is an error; a malformed user id or a store
	// that cannot be read never reaches Slack.
	var se sl.SlackErrorResponse
	if err := app.PublishHome(ctx, "U0GONE"); !errors.As(err, &se) || se.Err != "user_not_found" {
		t.Errorf("refused view: err = %v, want slack's user_not_found", err)
	}
	fake.take()
	if err := app.PublishHome(ctx, "<!channel>"); err == nil {
		t.Error("a malformed user id was published")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := app.PublishHome(cancelled, "U0ALICE"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
	if got := fake.take(); len(got) != 0 {
		t.Errorf("%d views published for a malformed id or an unread store, want 0", len(got))
	}
}

func mustOpen(t *testing.T, rig *testrig.Rig) []*bot.Escalation {
	t.Helper()
	open, err := rig.DB.FindOpen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return open
}

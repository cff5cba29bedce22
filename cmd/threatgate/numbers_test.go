package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/slack"
	"github.com/threatgate/threatgate/adapters/web"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
)

const numbersPolicy = `
version: 1
signals:
  - {id: auth, category: access-control, weight: 50, when: {paths: ["**/auth/**"]}}
tiers:
  - id: T2
    name: high
    when: {min_score: 50}
    artifacts: [threat-model]
    approvals: [{group: appsec, count: 1}]
    decision: 24h
    deferrable: true
groups:
  appsec: {members: [alice, bob]}
  leads: {members: [dave]}
people:
  - {gitlab: ann, email: ann@example.com}
  - {gitlab: alice, email: alice@example.com}
  - {gitlab: bob, email: bob@example.com}
  - {gitlab: dave, email: dave@example.com}
authority: {retier: [leads], arbiter: [leads]}
`

// TestDeadlineEverySurface renders the same escalations through every
// surface (/threatgate status and backlog, the text and Slack digests,
// Slack's App Home and card, the dashboard, the escalation page and the
// API) and checks that they agree on where each deadline stands (sign and
// amount: bot.DeadlineOf's phrase) and on whom each waits (bot.WaitingOn):
//
//	ESC-1 in review, its decision due a week ago: overdue by 6d 14h
//	ESC-2 deferred until 11-04 (00:00) with 23h of its 24h left; the
//	      deferral ended 5d 23h ago and the sweep has not brought it
//	      back: its clock runs again, overdue by 5d (the case)
//	ESC-3 deferred until later: paused, 23h left
//	ESC-4 awaiting artifacts, 12h left, waiting on its author
func TestDeadlineEverySurface(t *testing.T) {
	ctx := context.Background()
	r := testrig.NewRig(t, numbersPolicy)
	t0 := testrig.T0 // Monday 2026-11-02 09:00 UTC
	mr := func(iid int64) {
		t.Helper()
		m := &policies.MergeRequest{IID: iid, PathWithNamespace: "shop/api", Title: fmt.Sprintf("change %d", iid), TargetBranch: "main",
			SHA: fmt.Sprintf("%040d", iid), UpdatedAt: r.Clock.Now(), Author: policies.User{Username: "ann"},
			Changes: []policies.Change{{OldPath: "internal/auth/a.go", NewPath: "internal/auth/a.go"}}}
		if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: m}}); err != nil {
			t.Fatalf("open !%d: %v", iid, err)
		}
	}
	say := func(person, line string) string {
		t.Helper()
		c, err := bot.ParseCommand(line)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		rep, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: person, Surface: "test"}, Command: &c})
		if err != nil {
			t.Fatalf("%s: %q: %v", person, line, err)
		}
		return rep.Text
	}
	for iid := int64(1); iid <= 3; iid++ {
		mr(iid)
		say("ann", fmt.Sprintf("/threatgate artifact ESC-%d threat-model https://wiki.example.com/tm", iid))
	}
	r.Clock.Set(t0.Add(time.Hour))
	say("dave", "/threatgate defer ESC-2 2026-11-04 waiting for the vendor")
	say("dave", "/threatgate defer ESC-3 2026-11-20 waiting for the audit")
	r.Clock.Set(time.Date(2026, 11, 9, 11, 0, 0, 0, time.UTC))
	mr(4)
	now := time.Date(2026, 11, 9, 23, 0, 0, 0, time.UTC)
	r.Clock.Set(now)

	want := map[string]struct {
		phrase  string
		waiting []string
	}{
		"ESC-1": {"overdue by 6d 14h", []string{"alice", "bob"}},
		"ESC-2": {"overdue by 5d", []string{"alice", "bob"}},
		"ESC-3": {"paused, 23h left", []string{"alice", "bob"}},
		"ESC-4": {"12h left", []string{"ann"}},
	}
	open, err := r.DB.FindOpen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	esc := map[string]*bot.Escalation{}
	for _, e := range open {
		esc[e.ID] = e
	}
	for id, w := range want {
		e := esc[id]
		if e == nil {
			t.Fatalf("%s is not open", id)
		}
		if got := bot.DeadlineOf(e, r.Policy, now).Phrase(); got != w.phrase {
			t.Errorf("%s (%s): DeadlineOf says %q, want %q", id, e.State, got, w.phrase)
		}
		if got := bot.WaitingOn(e, r.Policy); strings.Join(got, ", ") != strings.Join(w.waiting, ", ") {
			t.Errorf("%s: WaitingOn = %v, want %v", id, got, w.waiting)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Each surface, as text to look into; line picks out what one
	// escalation's entry says.
	nobody := func(string) string { return "" }
	blocksText := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		// Unquote the JSON's escapes so that phrases read as written.
		s = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\n`, "\n").Replace(string(b))
		return s
	}
	digest := bot.BuildDigest(open, nil, nil, now.Add(-24*time.Hour), now, r.Policy)
	srv := &web.Server{Store: r.DB, Policy: r.Engine.Policy, Clock: r.Clock}
	h := srv.Handler()
	get := func(path string) string {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	var list web.ListJSON
	if err := json.Unmarshal([]byte(get("/api/escalations")), &list); err != nil {
		t.Fatal(err)
	}
	api := list.Items
	backlog := say("ann", "/threatgate backlog")
	digestText := bot.RenderDigestText(digest)
	slackDigest := blocksText(slack.RenderDigest(digest, nobody))
	home := blocksText(slack.RenderHome(bot.QueueOf("ann", open, r.Policy, now), "UANN", now, nobody).Blocks)
	dashboard := get("/")

	for id, w := range want {
		waiting := strings.Join(w.waiting, ", ")
		surfaces := map[string]string{
			"status":              say("ann", "/threatgate status "+id),
			"backlog":             entry(backlog, "- "+id+" ", "\n"),
			"digest":              entry(digestText, "- "+id+" ", "\n"),
			"slack digest":        entry(slackDigest, "*"+id+"*", "\n•"),
			"slack app home":      entry(home, "*"+id+"*", "\n•"),
			"dashboard (aging)":   entry(entry(dashboard, `id="aging"`, "</section>"), ">"+id+"<", "</tr>"),
			"escalation page":     get("/escalations/" + id),
			"slack card":          blocksText(slack.RenderCard(bot.CardOf(esc[id], r.Policy, now), id, nobody)),
			"text card (console)": bot.Card(esc[id], r.Policy, now),
		}
		for name, text := range surfaces {
			if text == "" {
				t.Errorf("%s: %s does not show it", id, name)
				continue
			}
			switch name {
			case "slack card", "text card (console)":
				// The card is edited as the escalation changes, not as
				// time passes: it gives the deadline as a time, the one
				// DeadlineOf moves by the deferral.
				due := bot.DeadlineOf(esc[id], r.Policy, now).Due
				if !strings.Contains(text, due.UTC().Format("2006-01-02 15:04")) && !strings.Contains(text, fmt.Sprintf("^%d^", due.Unix())) {
					t.Errorf("%s: %s does not give the deadline %s:\n%s", id, name, due, text)
				}
			default:
				if !strings.Contains(text, w.phrase) {
					t.Errorf("%s: %s does not say %q:\n%s", id, name, w.phrase, text)
				}
				for _, wrong := range []string{"OVERDUE", "due in"} {
					if strings.Contains(text, wrong) {
						t.Errorf("%s: %s says %q, not the one phrase", id, name, wrong)
					}
				}
			}
			// Whom it waits on: App Home's own list says what is missing
			// instead, and the digest's deferred list says when it is back.
			if name == "slack app home" && id == "ESC-4" || name == "digest" && id == "ESC-3" || name == "slack digest" && id == "ESC-3" {
				continue
			}
			if !strings.Contains(text, waiting) {
				t.Errorf("%s: %s does not say it waits on %s:\n%s", id, name, waiting, text)
			}
		}
		var j *web.EscalationJSON
		for i := range api {
			if api[i].ID == id {
				j = &api[i]
			}
		}
		dl := bot.DeadlineOf(esc[id], r.Policy, now)
		switch {
		case j == nil || j.Deadline == nil:
			t.Errorf("%s: the API gives no deadline", id)
		case j.Deadline.Text != w.phrase || j.Deadline.LeftSeconds != int64(dl.Left/time.Second) || j.Deadline.Overdue != dl.Overdue ||
			!j.Deadline.Due.Equal(dl.Due) || strings.Join(j.Waiting, ", ") != waiting:
			t.Errorf("%s: the API says %+v, waiting %v; want %q (%+v), waiting %s", id, *j.Deadline, j.Waiting, w.phrase, dl, waiting)
		}
	}
	// The overdue ones are counted as such wherever there is a count.
	if digest.Overdue != 2 || !strings.Contains(digestText, "(2 overdue)") {
		t.Errorf("digest: %d overdue, want 2 (ESC-1, ESC-2):\n%s", digest.Overdue, digestText)
	}
	if !strings.Contains(dashboard, "<strong>2</strong> SLA breaches") {
		t.Errorf("dashboard does not count 2 SLA breaches")
	}
}

// entry returns the part of s from the first start to the next end after
// it (or to the end of s); "" when s has no start.
func entry(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s[len(start):], end); j >= 0 {
		return s[:len(start)+j]
	}
	return s
}

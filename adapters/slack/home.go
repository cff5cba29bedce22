package slack

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// Bounds of the App Home tab. A view may hold 100 blocks; the tab keeps to
// maxBlocks as messages do: two blocks on top and, per list, a header, a
// context line and at most homeSections sections.
const (
	homeSections = 9   // sections of one list; the items that do not fit are counted as more
	homeRef      = 80  // runes of project!iid, before escaping
	homeTitle    = 100 // runes of an MR title, before escaping
	homeName     = 40  // runes of a tier id or name, an artifact kind
	homePeople   = 5   // people named on an item's "waiting on"
	homeKinds    = 5   // artifact kinds named on an item's "missing"
)

// RenderHome writes the App Home tab of Slack user userID as a view: the
// queue of the person they are (q.Person, from bot.QueueOf), as of now.
// It lists what waits on them (approvals, artifacts, intake answers), then
// their own merge requests under review, each with its deadline (the
// phrase every surface writes, bot.Deadline.Phrase, and a date token,
// flagged when overdue) and, where it helps, whom it waits on
// (bot.WaitingOn); a list that is empty says so. When q.Person is
// "" (the policy maps userID to nobody) the tab says how to get mapped
// instead. Every outside string is escaped; the only mentions are of the
// people users maps to a Slack id.
func RenderHome(q bot.Queue, userID string, now time.Time, users UserIDs) sl.HomeTabViewRequest {
	view := sl.HomeTabViewRequest{Type: sl.VTHomeTab}
	if q.Person == "" {
		view.Blocks.BlockSet = compact([]sl.Block{
			sl.NewHeaderBlock(plain("threatgate security reviews", maxHeader)),
			section(md("Your Slack account %s is not mapped to a person in threatgate's policy, so there is no queue to show you.", code(userID))),
			section(md("Ask a threatgate admin to add %s to your entry under `people` in the policy. Once the policy is reloaded, this tab lists the reviews waiting on you and your own merge requests under review.", code("slack: "+userID))),
		})
		return view
	}
	bs := []sl.Block{
		sl.NewHeaderBlock(plain("Your security reviews", maxHeader)),
		contextBlock(md("Queue of %s as of %s.", mention(q.Person, users), date(now))),
	}
	bs = append(bs, homeList("Waiting for your approval", q.Approve, users, false,
		"Nothing waits for your approval.",
		md("Approve in the escalation's thread with its Approve button, or with `/approve %s %s`.", "<id>", "<rationale>"))...)
	bs = append(bs, homeList("Artifacts asked of you", q.Artifacts, users, false,
		"No artifacts are asked of you.",
		md("Hand one in with `/threatgate artifact %s %s` or the Add artifact button in its thread.", "<id>", "<kind> <link>"))...)
	if q.Intake.Len() > 0 {
		bs = append(bs, homeList("Intake to answer", q.Intake, users, false, "",
			"Answer each field as a line `field: answer` in the escalation's thread.")...)
	}
	bs = append(bs, homeList("Your merge requests under review", q.Own, users, true,
		"None of your merge requests is under security review.",
		md("`/threatgate status %s` shows one in full.", "<id>"))...)
	view.Blocks.BlockSet = compact(bs)
	return view
}

// homeList is one list of the tab: a header with its size, the items (or
// empty, when there are none), then hint and how many were left out.
// progress adds to each item what it waits on.
func homeList(title string, l bot.QueueList, users UserIDs, progress bool, empty, hint markup) []sl.Block {
	bs := []sl.Block{sl.NewHeaderBlock(plain(fmt.Sprintf("%s (%d)", title, l.Len()), maxHeader))}
	if l.Len() == 0 {
		return append(bs, section("_"+empty+"_"))
	}
	lines := make([]markup, len(l.Items))
	for i, it := range l.Items {
		lines[i] = homeItem(it, users, progress)
	}
	items, shown := packed(lines, homeSections)
	bs = append(bs, items...)
	var more markup
	if n := l.More + len(l.Items) - shown; n > 0 {
		more = md("…and %d more not shown; `/threatgate backlog` lists every open escalation.", n)
	}
	return append(bs, contextBlock(hint, more))
}

// homeItem writes one escalation of a list on two lines: id, MR and
// title; then tier, state, deadline and, with progress, what it waits on.
func homeItem(it bot.QueueItem, users UserIDs, progress bool) markup {
	head := md("*%s* %s", it.ID, code(clip(fmt.Sprintf("%s!%d", it.Project, it.MRIID), homeRef)))
	if it.Title != "" {
		head += md(" %s", clip(it.Title, homeTitle))
	}
	if it.Urgent {
		head = ":rotating_light: " + head + " · *URGENT*"
	}
	head = "• " + head
	facts := []markup{
		md("%s %s", clip(it.Tier, homeName), clip(it.TierName, homeName)),
		md("%s", state(it.State)),
		homeDue(it),
	}
	if progress {
		facts = append(facts, homeProgress(it, users))
	}
	return head + "\n    " + joinWith(" · ", facts...)
}

// homeDue writes an item's deadline: the phrase every surface writes
// (bot.Deadline.Phrase), flagged when overdue, with the deadline as a date
// token (and, while deferred, when the deferral ends).
func homeDue(it bot.QueueItem) markup {
	dl := it.Deadline
	switch {
	case !dl.Has:
		return "no decision deadline"
	case dl.Paused && !dl.Until.IsZero():
		return md(":double_vertical_bar: %s (deferred until %s)", dl.Phrase(), date(dl.Until))
	case dl.Paused:
		return md(":double_vertical_bar: %s", dl.Phrase())
	case dl.Overdue:
		return md(":warning: *%s*: decision was due %s", dl.Phrase(), date(dl.Due))
	}
	return md("%s: decision due %s", dl.Phrase(), date(dl.Due))
}

// homeProgress says what an item waits on: the intake, artifacts, or the
// people bot.WaitingOn names (the arbiters when disputed).
func homeProgress(it bot.QueueItem, users UserIDs) markup {
	switch {
	case it.State == bot.StateIntake:
		return "waiting for the intake answers"
	case len(it.Missing) > 0:
		var kinds []markup
		for _, k := range it.Missing[:min(len(it.Missing), homeKinds)] {
			kinds = append(kinds, code(clip(k, homeName)))
		}
		return md("missing %s%s", joinWith(", ", kinds...), andMore(len(it.Missing)-homeKinds))
	case len(it.WaitingOn) > 0:
		return md("waiting on %s%s", people(it.WaitingOn[:min(len(it.WaitingOn), homePeople)], users), andMore(len(it.WaitingOn)-homePeople))
	}
	return ""
}

// andMore writes " and n more" when n is positive.
func andMore(n int) markup {
	if n <= 0 {
		return ""
	}
	return md(" and %d more", n)
}

// packed writes lines as at most budget sections, each within Block Kit's
// length limit, breaking only between lines; shown is how many lines fit.
func packed(lines []markup, budget int) (bs []sl.Block, shown int) {
	var cur markup
	for _, l := range lines {
		l = fit(l, maxText)
		if cur != "" && utf8.RuneCountInString(string(cur))+1+utf8.RuneCountInString(string(l)) > maxText {
			if len(bs)+1 >= budget {
				break
			}
			bs, cur = append(bs, section(cur)), ""
		}
		if cur == "" {
			cur = l
		} else {
			cur += "\n" + l
		}
		shown++
	}
	if cur != "" {
		bs = append(bs, section(cur))
	}
	return bs, shown
}

// PublishHome publishes the App Home tab of Slack user userID (views.publish):
// the queue of the person the policy in force maps them to, among the
// store's open escalations, or how to get mapped when it maps them to
// nobody. It may run concurrently (each opening of the tab publishes it).
// Errors are internal: reading the store, or Slack refusing the view.
func (a *App) PublishHome(ctx context.Context, userID string) error {
	if !validUserID(userID) {
		return fmt.Errorf("publish home tab: %q is not a Slack user id", clip(userID, 40))
	}
	pol := a.Engine.Policy()
	now := a.now()
	q := bot.Queue{}
	if person := a.identity(pol, userID).Person; person != "" {
		names := []string{person}
		if p := pol.Person("id", person); p != nil && p.GitLab != "" && !strings.EqualFold(p.GitLab, person) {
			names = append(names, p.GitLab) // an MR's author is its GitLab username
		}
		open, err := a.openOf(ctx, names, now)
		if err != nil {
			return fmt.Errorf("publish home tab of %s: %w", userID, err)
		}
		q = bot.QueueOf(person, open, pol, now)
	}
	view := RenderHome(q, userID, now, a.users(pol))
	if _, err := a.Client.PublishViewContext(ctx, sl.PublishViewContextRequest{UserID: userID, View: view}); err != nil {
		return fmt.Errorf("publish home tab of %s: %w", userID, err)
	}
	return nil
}

// validUserID reports whether s is a Slack user id (U… or W…).
func validUserID(s string) bool { return userID.MatchString(s) }

// homePages bounds the pages of a person's open escalations App Home reads
// (bot.MaxListLimit each).
const homePages = 5

// openOf returns the open escalations that may be in a person's queue:
// those naming them under any of names (author, commit author, filer,
// waited on), through the store's whole-record index when it has one,
// else every open one.
func (a *App) openOf(ctx context.Context, names []string, now time.Time) ([]*bot.Escalation, error) {
	lp, ok := a.Store.(interface {
		ListPage(ctx context.Context, q bot.ListQuery) (bot.ListPage, error)
	})
	if !ok {
		return a.Store.FindOpen(ctx)
	}
	yes := true
	seen := map[string]bool{}
	var out []*bot.Escalation
	for _, name := range names {
		q := bot.ListQuery{Person: name, Open: &yes, Limit: bot.MaxListLimit, Now: now}
		for range homePages {
			page, err := lp.ListPage(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, e := range page.Items {
				if !seen[e.ID] {
					seen[e.ID] = true
					out = append(out, e)
				}
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
	}
	return out, nil
}

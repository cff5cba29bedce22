package slack

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// Bounds of the digest and the report in Block Kit: sections per list
// (the lines that do not fit are counted as more), and runes of each piece
// of outside text before it is escaped.
const (
	digestSections = 8   // sections of the open list
	digestListSecs = 3   // sections of each other list
	digestRef      = 80  // project!iid
	digestTitle    = 100 // an MR title
	digestName     = 40  // a tier id or name, a person, a group, a signal, a category
	digestPeople   = 5   // people named on an item's "waiting on"
	digestHolderID = 10  // escalations named per bottleneck
)

// deliverDigest posts a digest or a weekly report in Channel as a
// top-level message (at most once, as every part the sink posts).
func (a *App) deliverDigest(ctx context.Context, e bot.Effect, log *slog.Logger) (bot.MessageRef, error) {
	users := a.sinkUsers(a.sinkPolicy())
	render := func() ([]sl.Block, string) { return renderDigestEffect(e, users) }
	return a.sinkPost(ctx, e, sinkPartThread, a.Channel, "", render, log)
}

// renderDigestEffect renders what a digest effect carries: the weekly
// report when it has one, else the daily digest.
func renderDigestEffect(e bot.Effect, users UserIDs) ([]sl.Block, string) {
	if e.Report != nil {
		return RenderReport(e.Report), ReportText(e.Report)
	}
	return RenderDigest(e.Digest, users), DigestText(e.Digest)
}

// RenderDigest writes the daily digest as Block Kit: a header and its
// headline, the open escalations (urgent first, then by time left: MR,
// title, tier, state, deadline as a date token and how far off, how long
// it has waited and on whom), the deadlines missed since the last digest,
// the bottlenecks, the deferred escalations with their return date, the
// last 7 days' throughput, the head of the audit chain (whole, to be kept
// as an anchor) and a link to the dashboard. The people an
// escalation waits on are mentioned when users maps them to a Slack id;
// every other name and every piece of outside text is escaped. nil for a
// nil digest.
func RenderDigest(d *bot.DigestData, users UserIDs) []sl.Block {
	if d == nil {
		return nil
	}
	bs := []sl.Block{
		sl.NewHeaderBlock(plain("Security review digest", maxHeader)),
		contextBlock(md("%s · %s", date(d.Now), digestHeadline(d))),
	}
	if len(d.Open) > 0 {
		lines := make([]markup, len(d.Open))
		for i, it := range d.Open {
			lines[i] = digestItem(it, d, users)
		}
		bs = append(bs, section("*Open*, urgent first, then by time left"))
		items, shown := packed(lines, digestSections)
		bs = append(bs, items...)
		if n := d.OpenMore + len(d.Open) - shown; n > 0 {
			bs = append(bs, contextBlock(md("…and %d more open; `/threatgate backlog` lists them all.", n)))
		}
	}
	if len(d.Breaches) > 0 {
		lines := make([]markup, len(d.Breaches))
		for i, x := range d.Breaches {
			lines[i] = digestBreach(x)
		}
		bs = append(bs, digestList(md(":warning: *Deadlines missed* since %s", date(d.Since)), lines, d.BreachesMore)...)
	}
	if len(d.People) > 0 || len(d.Groups) > 0 {
		var fields []markup
		if len(d.People) > 0 {
			fields = append(fields, "*People waited on most*\n"+digestHolders(d.People))
		}
		if len(d.Groups) > 0 {
			fields = append(fields, "*Groups holding the most*\n"+digestHolders(d.Groups))
		}
		bs = append(bs, fielded("*Bottlenecks*", fields)...)
	}
	if len(d.Deferred) > 0 {
		lines := make([]markup, len(d.Deferred))
		for i, it := range d.Deferred {
			lines[i] = md("• *%s* %s · %s · back %s · %s", it.ID, digestMR(it.Project, it.MRIID, it.MRURL, it.Title), clip(it.Tier, digestName), date(it.DeferredUntil), it.Deadline.Phrase())
		}
		bs = append(bs, digestList(":double_vertical_bar: *Deferred*", lines, d.DeferredMore)...)
	}
	bs = append(bs, contextBlock(digestThroughput(d.Throughput)))
	if len(d.Caps) > 0 {
		var parts []markup
		for _, u := range d.Caps {
			parts = append(parts, md("%s %d of %d", u.Person, u.Quarter, u.Allowed))
		}
		bs = append(bs, contextBlock(md("Manual escalations this quarter (cap %d, plus overrides): ", d.Cap)+joinWith(", ", parts...)))
	}
	if d.HeadHash != "" {
		bs = append(bs, contextBlock(md("Audit chain head: seq %s, hash %s (keep this as an anchor)", strconv.FormatUint(d.HeadSeq, 10), code(d.HeadHash))))
	}
	if link := dashboardLink(d.Dashboard, "Open the dashboard"); link != "" {
		bs = append(bs, contextBlock(link))
	}
	return compact(bs)
}

// DigestText is the digest's notification text: its headline (the second
// line of bot.RenderDigestText), escaped. It mentions nobody.
func DigestText(d *bot.DigestData) string {
	if d == nil {
		return ""
	}
	lines := strings.SplitN(bot.RenderDigestText(d), "\n", 3)
	return fallback("Security review digest: " + lines[min(1, len(lines)-1)])
}

// digestHeadline is the digest in one line, as markup.
func digestHeadline(d *bot.DigestData) markup {
	if d.OpenCount() == 0 && d.DeferredCount() == 0 {
		return "The backlog is empty: no escalation is waiting."
	}
	line := md("*%d open*", d.OpenCount())
	var of []markup
	if d.Urgent > 0 {
		of = append(of, md("%d urgent", d.Urgent))
	}
	if d.Overdue > 0 {
		of = append(of, md("*%d overdue*", d.Overdue))
	}
	if len(of) > 0 {
		line += " (" + joinWith(", ", of...) + ")"
	}
	if n := d.DeferredCount(); n > 0 {
		line += md(", %d deferred", n)
	}
	missed := "deadlines missed"
	if d.BreachCount() == 1 {
		missed = "deadline missed"
	}
	return line + md("; %d %s since the last digest.", d.BreachCount(), missed)
}

// digestItem writes one open escalation on two lines: id, MR and title;
// then tier, state, deadline, how long it waited and on whom.
func digestItem(it bot.DigestItem, d *bot.DigestData, users UserIDs) markup {
	head := md("*%s* %s", it.ID, digestMR(it.Project, it.MRIID, it.MRURL, it.Title))
	if it.Urgent {
		head = ":rotating_light: " + head + " · *URGENT*"
	}
	facts := []markup{
		md("%s %s", clip(it.Tier, digestName), state(it.State)),
		digestDue(it),
	}
	if it.Waited > 0 {
		facts = append(facts, md("waited %s", bot.HumanDuration(it.Waited)))
	}
	if len(it.WaitingOn) > 0 {
		facts = append(facts, md("waiting on %s%s", people(it.WaitingOn[:min(len(it.WaitingOn), digestPeople)], users), andMore(len(it.WaitingOn)-digestPeople)))
	}
	return "• " + head + "\n    " + joinWith(" · ", facts...)
}

// digestDue writes where an item stands against its decision deadline:
// the phrase every surface writes (bot.Deadline.Phrase), flagged when
// overdue, and the deadline as a date token.
func digestDue(it bot.DigestItem) markup {
	dl := it.Deadline
	switch {
	case !dl.Has:
		return "no decision deadline"
	case dl.Overdue:
		return md(":warning: *%s* (due %s)", dl.Phrase(), date(dl.Due))
	}
	return md("%s (due %s)", dl.Phrase(), date(dl.Due))
}

// digestBreach writes one missed deadline.
func digestBreach(x bot.DigestBreach) markup {
	line := md("• *%s*", x.ID)
	if x.Project != "" {
		line += " " + code(clip(fmt.Sprintf("%s!%d", x.Project, x.MRIID), digestRef))
	}
	if x.Tier != "" {
		line += md(" %s", clip(x.Tier, digestName))
	}
	line += md(": decision was due %s", date(x.Due))
	switch {
	case !x.DecidedAt.IsZero():
		line += md("; decided %s later", bot.HumanDuration(x.DecidedAt.Sub(x.Due)))
	case x.Open:
		line += "; *still open*"
	}
	return line
}

// digestHolders writes bottlenecks, one a line: who, how many, which.
func digestHolders(hs []bot.Bottleneck) markup {
	lines := make([]markup, len(hs))
	for i, h := range hs {
		ids := h.Escalations[:min(len(h.Escalations), digestHolderID)]
		lines[i] = md("%s *%d* (%s%s)", clip(h.Who, digestName), len(h.Escalations), list(ids), andMore(len(h.Escalations)-len(ids)))
	}
	return join(lines...)
}

// digestList writes a titled list in at most digestListSecs sections,
// and how many more there are.
func digestList(title markup, lines []markup, more int) []sl.Block {
	bs := []sl.Block{section(title)}
	items, shown := packed(lines, digestListSecs)
	bs = append(bs, items...)
	if n := more + len(lines) - shown; n > 0 {
		bs = append(bs, contextBlock(md("…and %d more.", n)))
	}
	return bs
}

// digestThroughput writes the last 7 days' throughput.
func digestThroughput(tp bot.Throughput) markup {
	line := md(":bar_chart: Last 7 days: %d opened, %d decided.", tp.Opened, tp.Decided)
	var parts []markup
	for _, t := range tp.Tiers {
		if t.Decision.N > 0 {
			parts = append(parts, md("%s %s (%d)", clip(t.Tier, digestName), bot.HumanDuration(t.Decision.Median), t.Decision.N))
		}
	}
	if len(parts) > 0 {
		line += " Median time to decision: " + joinWith(", ", parts...) + "."
	}
	return line
}

// digestMR writes an MR's reference (linked when the forge gave a usable
// URL) and its title.
func digestMR(project string, iid int64, rawURL, title string) markup {
	ref := mrLink(clip(project, digestRef), iid, rawURL)
	if title == "" {
		return ref
	}
	return md("%s %s", ref, clip(title, digestTitle))
}

// dashboardLink links u with text when it can sit in a link token (an
// absolute http(s) URL with nothing that could end the token); "" when
// not.
func dashboardLink(u string, text markup) markup {
	if u == "" || !sinkSafeLink(u) {
		return ""
	}
	return markup("<"+Escape(u)+"|") + text + ">"
}

// RenderReport writes a weekly report as Block Kit: a header with the
// week, its counts, the times to first response and to decision per tier
// (median and 90th percentile), the SLA breach and deferral rates, manual
// escalations per engineer against the cap, the signals that fired most
// and what became of them, and a link to the report on the dashboard.
// Every name is escaped; it mentions nobody. nil for a nil report.
func RenderReport(r *bot.WeeklyReport) []sl.Block {
	if r == nil {
		return nil
	}
	bs := []sl.Block{
		sl.NewHeaderBlock(plain("Weekly security review report · "+bot.WeekName(r.Year, r.Week), maxHeader)),
		contextBlock(md("%s to %s, UTC", r.From.UTC().Format("Mon 2006-01-02"), r.To.UTC().AddDate(0, 0, -1).Format("Sun 2006-01-02")),
			partial(r.Partial)),
		section(md("*%d opened*, *%d decided* (%d approved, %d rejected).", r.Opened, r.Decided, r.Approved, r.Rejected)),
	}
	if len(r.Tiers) > 0 {
		var fields []markup
		for _, t := range r.Tiers {
			fields = append(fields, md("*%s* %s\nFirst response: %s\nDecision: %s", clip(t.Tier, digestName), clip(t.Name, digestName),
				spreadMarkup(t.FirstResponse), spreadMarkup(t.Decision)))
		}
		bs = append(bs, fielded("*Time per tier* (median / 90th percentile, over how many)", fields)...)
	}
	bs = append(bs, section(join(
		rateMarkup("SLA breaches", r.Breaches, "decided after their deadline or not by it", "no escalation was decided or due"),
		rateMarkup("Deferrals", r.Deferrals, "of the escalations decided or deferred were deferred", "no escalation was decided or deferred"),
	)))
	capText := markup("no cap")
	if r.Cap > 0 {
		capText = md("cap %d a quarter", r.Cap)
	}
	var manual []markup
	for _, m := range r.Manual {
		line := md("• %s: %d this week, %d this quarter", clip(m.Person, digestName), m.Week, m.Quarter)
		if m.Allowed > 0 {
			line += md(" of %d", m.Allowed)
			if m.Quarter >= m.Allowed {
				line += " · *at the cap*"
			}
		}
		manual = append(manual, line)
	}
	if len(manual) == 0 {
		manual = []markup{"_None filed this week._"}
	}
	bs = append(bs, digestList(md("*Manual escalations* (%s, %s)", r.Quarter, capText), manual, 0)...)
	if len(r.Signals) > 0 {
		lines := make([]markup, len(r.Signals))
		for i, s := range r.Signals {
			lines[i] = md("• *%s*", clip(s.ID, digestName))
			if s.Category != "" {
				lines[i] += md(" (%s)", clip(s.Category, digestName))
			}
			lines[i] += md(": fired on %d opened; of %d decided, %d rejected, %d with changes asked", s.Fired, s.Decided, s.Rejected, s.Changed)
		}
		bs = append(bs, digestList("*Signals that fired most*", lines, 0)...)
	}
	if link := dashboardLink(r.URL(), "See it on the dashboard"); link != "" {
		bs = append(bs, contextBlock(link))
	}
	return compact(bs)
}

// ReportText is the report's notification text, escaped; it mentions
// nobody.
func ReportText(r *bot.WeeklyReport) string {
	if r == nil {
		return ""
	}
	return fallback(fmt.Sprintf("Weekly security review report %s: %d opened, %d decided, %d%% SLA breaches.",
		bot.WeekName(r.Year, r.Week), r.Opened, r.Decided, r.Breaches.Percent()))
}

// partial says that a report was made before its week was over.
func partial(p bool) markup {
	if !p {
		return ""
	}
	return "The week is not over yet: these are the figures so far."
}

// spreadMarkup writes a Spread as "5h / 1d 2h (3)", or "none".
func spreadMarkup(s bot.Spread) markup {
	if s.N == 0 {
		return "_none_"
	}
	return md("%s / %s (%d)", bot.HumanDuration(s.Median), bot.HumanDuration(s.P90), s.N)
}

// rateMarkup writes a Rate with what it counts, or what made it empty.
func rateMarkup(what markup, r bot.Rate, counts, empty markup) markup {
	if r.Of == 0 {
		return "*" + what + "*: none; " + empty + "."
	}
	return md("*%s*: %d of %d (%d%%) %s.", what, r.Count, r.Of, r.Percent(), counts)
}

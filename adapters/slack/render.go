package slack

import (
	"fmt"
	"net/url"
	"strings"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// RenderNotice writes a thread post as Block Kit: the same facts as
// bot.RenderText, in sections of mrkdwn, with secondary facts in context
// blocks, lists as fields, deadlines as Slack date tokens. id is the
// escalation's id (bot.IDPlaceholder when ""). Every piece of text is
// escaped (Escape); the blocks mention nobody. nil for a nil notice.
func RenderNotice(n *bot.Notice, id string) []sl.Block {
	bs, _ := renderNotice(n, id)
	return bs
}

// renderNotice is RenderNotice; known is false when n's kind has no
// rendering of its own (a kind added to bot without one here).
func renderNotice(n *bot.Notice, id string) (bs []sl.Block, known bool) {
	if n == nil {
		return nil, true
	}
	if id == "" {
		id = bot.IDPlaceholder
	}
	known = true
	switch n.Kind {
	case bot.NoticeOpened:
		bs = summaryBlocks(n, id, "")
	case bot.NoticeFiled:
		bs = summaryBlocks(n, id, "*Filed.* ")
	case bot.NoticeSelfFiled:
		bs = summaryBlocks(n, id, "The merge request needs a security review on its own. ")
	case bot.NoticeIntakeAsked:
		bs = append(bs, section(join(
			md(":memo: *Manual escalation* %s of %s (%s %s) by %s:", id, mrRef(n.Project, n.MRIID), n.Tier, n.TierName, n.By),
			quote(n.Text))))
		var fields []markup
		for _, f := range n.Fields {
			fields = append(fields, md("*%s*\n%s", clip(f.ID, maxOutsideShort), clip(f.Text, maxOutside)))
		}
		bs = append(bs, fielded(md("Before it counts as filed, %s, please answer each field as a line `field: answer` in this thread:", n.By), fields)...)
	case bot.NoticeTierRaised:
		bs = append(bs, section(md(":arrow_up: %s: tier raised from *%s* to *%s* (score %d).", id, n.FromTier, n.Tier, n.Score)))
		bs = append(bs, requirementBlocks(n.Requirements, id)...)
	case bot.NoticeRetiered:
		bs = append(bs, section(join(md("%s re-tiered from *%s* to *%s* by %s:", id, n.FromTier, n.Tier, n.By), quote(n.Text))))
		bs = append(bs, requirementBlocks(n.Requirements, id)...)
	case bot.NoticeReady:
		bs = append(bs, section(md(":white_check_mark: %s has every required artifact and is *ready for review*.", id)))
	case bot.NoticeBackInReview:
		bs = append(bs, section(md(":arrows_counterclockwise: %s is *back in review*: new commits at %s made earlier decisions stale.", id, shortSHA(n.SHA))))
	case bot.NoticeApproved:
		bs = append(bs, section(md(":white_check_mark: *%s approved* (%s %s).", id, n.Tier, n.TierName)))
		bs = append(bs, decisionBlocks(n.Decisions)...)
	case bot.NoticeRejected:
		bs = append(bs, section(md(":no_entry: *%s rejected*.", id)))
		bs = append(bs, decisionBlocks(n.Decisions)...)
	case bot.NoticeDisputed:
		bs = append(bs, section(md(":warning: *%s is disputed*: it has both approvals and rejections.", id)),
			contextBlock(md("An arbiter (%s) decides with `/approve` or `/threatgate reject`.", list(n.Arbiters))))
	case bot.NoticeDissent:
		bs = append(bs, section(join(md(":speech_balloon: *Dissent* from %s on %s, recorded:", n.By, id), quote(n.Text))))
	case bot.NoticeWithdrawn:
		bs = append(bs, section(join(md("%s *withdrawn* by %s:", id, n.By), quote(n.Text))))
	case bot.NoticeClosed:
		bs = append(bs, section(md("%s *withdrawn*: the merge request was closed.", id)))
	case bot.NoticeReopened:
		bs = append(bs, section(md("%s *resumed*: the merge request was reopened.", id)))
	case bot.NoticeResumed:
		if n.Requirements == nil {
			bs = append(bs, section(md("%s is *back in review*: %s.", id, clip(n.Why, maxOutside))),
				section(md(":warning: Its tier *%s* is no longer in the policy; someone in %s must re-tier it.", n.Tier, list(n.Retiers))))
			break
		}
		bs = append(bs, section(md("%s is *back in review* as *%s*: %s.", id, n.Tier, clip(n.Why, maxOutside))))
		bs = append(bs, requirementBlocks(n.Requirements, id)...)
	case bot.NoticeDeferralEnded:
		if n.Why != "" {
			bs = append(bs, section(md(":alarm_clock: %s: the deferral has ended, as %s; back to *%s*.", id, clip(n.Why, maxOutside), state(n.State))))
		} else {
			bs = append(bs, section(md(":alarm_clock: %s: the deferral has ended; back to *%s*.", id, state(n.State))))
		}
	case bot.NoticeBypass:
		bs = append(bs, section(md(":rotating_light: *BYPASS*: %s (%s) was merged at %s while *%s*, without the security approval its tier %s requires for that commit.",
			id, mrRef(n.Project, n.MRIID), shortSHA(n.SHA), state(n.State), n.Tier)))
	case bot.NoticeForged:
		bs = append(bs, section(md(":rotating_light: *FORGED STATUS*: %s found the gate's status %s on %s set by %s; it is reset to %s.",
			id, code(n.Found), shortSHA(n.SHA), clip(n.FoundBy, maxOutsideShort), code(n.Reset))))
	case bot.NoticeNudge:
		var what markup
		switch {
		case strings.HasPrefix(n.Why, "action:"):
			what = md("action item %s on %s is overdue:", strings.TrimPrefix(n.Why, "action:"), id)
		case n.Why == "artifact":
			what = md("%s still needs its artifacts (%d%% of the decision window has passed).", id, n.Threshold)
		default:
			what = md("%s waits for your decision (%d%% of the decision window has passed).", id, n.Threshold)
		}
		bs = append(bs, section(join(md(":bell: *Reminder* for %s: ", list(n.AskedOf))+what, quote(n.Text))))
		if !n.Due.IsZero() {
			bs = append(bs, contextBlock(md("Due %s", date(n.Due))))
		}
	case bot.NoticeHandoff:
		why := markup("nobody has responded in time")
		if n.By != "" {
			why = md("%s is away", n.By)
		}
		bs = append(bs, section(md(":handshake: %s is *handed off* to %s because %s: %s, please review it.", id, list(n.Groups), why, list(n.AskedOf))))
	case bot.NoticeLapsed:
		bs = append(bs, section(md(":rotating_light: *LAPSED*: %s (%s, %s %s) passed its decision deadline %s while *%s*; on-call has been paged.",
			id, mrRef(n.Project, n.MRIID), n.Tier, n.TierName, date(n.Due), state(n.State))))
	case bot.NoticeArtifactsAsked:
		var lines []markup
		template := false
		for _, f := range n.Fields {
			lines = append(lines, md("• %s %s", code(f.ID), clip(f.Text, maxOutsideShort)))
			template = template || bot.ArtifactTemplate(f.ID) != ""
		}
		bs = append(bs, sections(md(":page_facing_up: %s needs these artifacts from %s:", id, list(n.AskedOf)), lines)...)
		hint := md("Reply here with `kind: link-or-text` (such as %s), upload the file with its kind as the message, or press *Add artifact* on the card.",
			code(firstField(n.Fields)+": https://…"))
		bs = append(bs, contextBlock(hint))
		if template {
			// The template, to copy into a reply that starts with
			// "threat-model:" (or into the Add artifact form).
			bs = append(bs, section(md("*STRIDE template* for the threat model: reply with `threat-model:` and this, filled in:\n```%s```", bot.ArtifactTemplate("threat-model"))))
		}
	case bot.NoticeAnswer:
		bs = append(bs, sections("", escapedLines(clip(n.Text, maxOutside)))...)
	default:
		known = false
		bs = append(bs, section(md("%s: %s", id, n.Kind)))
	}
	return compact(bs), known
}

// NoticeText is the plain text Slack shows in notifications and to screen
// readers for a notice (the message's "text" beside its blocks): the
// first line of bot.RenderText, escaped. It mentions nobody.
func NoticeText(n *bot.Notice, id string) string {
	if n == nil {
		return ""
	}
	return fallback(bot.RenderText(n, id))
}

// fallback is the first line of a text rendering, shortened and escaped.
func fallback(text string) string {
	line, _, _ := strings.Cut(text, "\n")
	return Escape(clip(strings.TrimSpace(line), maxFallback))
}

// RenderEffect renders what a chat effect asks Slack to show: for a
// thread_post, its notice, opened by a context line that mentions the
// effect's Mention list (mapped to Slack ids by users; people without one
// are named in plain text); for a thread_summary, its card (RenderCard).
// text is the message's fallback text, starting with the same mentions.
// Other effects render as nothing.
func RenderEffect(e bot.Effect, users UserIDs) (blocks []sl.Block, text string) {
	switch {
	case e.Kind == bot.EffectThreadPost && e.Notice != nil:
		blocks, text = RenderNotice(e.Notice, e.Escalation), NoticeText(e.Notice, e.Escalation)
		if who := people(unique(e.Mention), users); who != "" {
			blocks = compact(append([]sl.Block{contextBlock(md("cc %s", who))}, blocks...))
			text = string(who) + ": " + text // who is markup: mentions and escaped names
		}
	case e.Kind == bot.EffectThreadSummary && e.Card != nil:
		blocks, text = RenderCard(e.Card, e.Escalation, users), CardText(e.Card, e.Escalation)
	case e.Kind == bot.EffectThreadPost:
		// A post without a notice carries threatgate's own text.
		blocks = sections("", escapedLines(e.Text))
		text = fallback(e.Text)
	}
	return blocks, text
}

// summaryBlocks is the opening of an escalation (opened, filed,
// self_filed): how it came and why, the signals with their evidence, what
// the tier requires, and the deadlines.
func summaryBlocks(n *bot.Notice, id string, lead markup) []sl.Block {
	s := n.Summary
	if s == nil {
		s = &bot.Summary{}
	}
	icon, kind := markup(":shield:"), markup("*Security review required*")
	if s.Manual {
		kind = "*Manual security escalation*"
		if s.Urgent {
			icon, kind = ":rotating_light:", "*URGENT manual security escalation*"
		}
	}
	head := md("%s %s%s: %s, tier *%s* (%s)", icon, lead, kind, id, n.Tier, n.TierName)
	if !s.Manual {
		head += md(", score %d", n.Score)
	}
	bs := []sl.Block{section(head + ".")}
	if s.Manual {
		var fields []markup
		for _, f := range s.Intake {
			fields = append(fields, md("*%s*\n%s", clip(f.ID, maxOutsideShort), clip(f.Text, maxOutside)))
		}
		bs = append(bs, fielded(join(md("*Filed by* %s:", s.Filer), quote(s.Reason)), fields)...)
	}
	if len(s.Signals) > 0 {
		bs = append(bs, sections("*Signals*", signalLines(s.Signals))...)
	}
	bs = append(bs, requirementBlocks(n.Requirements, id)...)
	var due []markup
	if !s.FirstResponseDue.IsZero() {
		due = append(due, md("First response due %s", date(s.FirstResponseDue)))
	}
	if !s.DecisionDue.IsZero() {
		due = append(due, md("Decision due %s", date(s.DecisionDue)))
	}
	if len(due) > 0 {
		bs = append(bs, contextBlock(":hourglass: "+joinWith(" · ", due...)))
	}
	return bs
}

// requirementBlocks says what a tier asks for: artifacts, approvals,
// reviewers, who is informed, the checklist; fields side by side.
func requirementBlocks(r *bot.Requirements, id string) []sl.Block {
	if r == nil {
		return nil
	}
	var fields []markup
	if len(r.Artifacts) > 0 {
		var lines []markup
		for _, a := range r.Artifacts {
			lines = append(lines, md("• %s %s", code(a.ID), a.Text))
		}
		fields = append(fields, "*Artifacts required*\n"+join(lines...))
	}
	approvals := markup("none")
	if len(r.Approvals) > 0 {
		var lines []markup
		for _, a := range r.Approvals {
			lines = append(lines, md("• %d from *%s* (%s)", a.Count, a.Group, a.Role))
		}
		approvals = join(lines...)
	}
	fields = append(fields, "*Approvals*\n"+approvals)
	if len(r.Review) > 0 {
		fields = append(fields, "*Review*\n"+list(r.Review))
	}
	if len(r.Inform) > 0 {
		fields = append(fields, "*Informed*\n"+list(r.Inform))
	}
	if len(r.Checklist) > 0 {
		fields = append(fields, "*Checklist* (each approver answers)\n"+list(r.Checklist))
	}
	bs := fielded("", fields)
	if len(r.Artifacts) > 0 {
		bs = append(bs, contextBlock(md("Add each artifact with `/threatgate artifact %s %s`.", id, "<kind> <link>")))
	}
	return bs
}

// decisionBlocks lists the decisions that count, with their rationale,
// as fields; stale ones are left out, as in the text rendering.
func decisionBlocks(ds []bot.Decision) []sl.Block {
	var fields []markup
	for _, x := range ds {
		if x.Stale {
			continue
		}
		role := x.Group
		if x.Arbiter {
			role = "arbiter"
		}
		f := md("*%s*", x.By)
		if role != "" {
			f += md(" (%s)", role)
		}
		if q := quote(x.Rationale); q != "" {
			f += "\n" + q
		}
		fields = append(fields, f)
	}
	return fielded("", fields)
}

// mrRef writes project!iid as inline code.
// signalLines writes the signals that fired, each with its evidence (as
// stored: masked where the policy redacts), a few lines each.
func signalLines(signals []policies.Fired) []markup {
	var lines []markup
	for _, sg := range signals {
		lines = append(lines, md("• *%s* (%s, +%d)", sg.ID, sg.Category, sg.Weight))
		for i, ev := range sg.Evidence {
			if i == evidencePerSignal {
				lines = append(lines, md("    ◦ and %d more", len(sg.Evidence)-evidencePerSignal))
				break
			}
			lines = append(lines, "    ◦ "+code(ev))
		}
	}
	return lines
}

// mrLink links an MR's reference to its page when the forge gave an
// http(s) URL that can sit in a link token; else it is the bare reference.
func mrLink(project string, iid int64, raw string) markup {
	ref := fmt.Sprintf("%s!%d", project, iid)
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(raw, "|<> \t\n\r") {
		return mrRef(project, iid)
	}
	return markup("<" + Escape(u.String()) + "|" + Escape(ref) + ">")
}

func mrRef(project string, iid int64) markup {
	return code(fmt.Sprintf("%s!%d", project, iid))
}

// escapedLines splits outside text into escaped lines.
func escapedLines(s string) []markup {
	var out []markup
	for l := range strings.SplitSeq(strings.ReplaceAll(strings.TrimSpace(s), "\r\n", "\n"), "\n") {
		out = append(out, markup(Escape(l)))
	}
	return out
}

// unique drops repeated and empty entries, keeping the order.
func unique(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// firstField is the id of the first of fs, "kind" when there is none.
func firstField(fs []bot.Field) string {
	if len(fs) == 0 {
		return "kind"
	}
	return fs[0].ID
}

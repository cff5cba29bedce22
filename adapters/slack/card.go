package slack

import (
	"fmt"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// button is one of the card's buttons.
type button struct {
	verb  bot.Verb
	label string
	style sl.Style
	// inIntake: the verb may run while a manual escalation waits for its
	// intake. This mirrors the verb table in bot (verbs.go, inIntake), which
	// is not exported; the engine refuses the others in intake anyway.
	inIntake bool
}

// buttons are the card's actions, in the order they are shown.
var buttons = []button{
	{verb: bot.VerbApprove, label: "Approve", style: sl.StylePrimary},
	{verb: bot.VerbReject, label: "Reject", style: sl.StyleDanger},
	{verb: bot.VerbArtifact, label: "Add artifact"},
	{verb: bot.VerbDissent, label: "Dissent", inIntake: true},
}

// RenderCard writes an escalation's summary, the parent message of its
// thread, as Block Kit: a header (id, MR, tier, state), the MR's title,
// its head and deadline; the artifacts and of whom they are asked; the
// approvals matrix; the residual risk; commit authors the policy does not
// know; who is waited on; and, while the escalation is active, buttons
// Approve, Reject, Add artifact and Dissent (only Dissent in intake: the
// others do not run there). id is the escalation's id
// (bot.IDPlaceholder when "").
//
// The people waited on are mentioned (<@U…>) when users maps them to a
// Slack id; everyone else, and every other name, is plain text. Times are
// absolute (date tokens), as in bot.RenderCardText: the card is edited when
// the escalation changes, not as the clock moves. nil for a nil card.
func RenderCard(c *bot.CardData, id string, users UserIDs) []sl.Block {
	if c == nil {
		return nil
	}
	if id == "" {
		id = bot.IDPlaceholder
	}
	head := fmt.Sprintf("%s · %s!%d · %s %s · %s", id, c.Project, c.MRIID, c.Tier, c.TierName, state(c.State))
	if c.Urgent {
		head = ":rotating_light: " + head + " · URGENT"
	}
	if c.Bypassed {
		head += " · BYPASSED"
	}
	bs := []sl.Block{sl.NewHeaderBlock(plain(head, maxHeader))}

	var facts []markup
	if c.HeadSHA != "" {
		facts = append(facts, "*Head*\n"+shortSHA(c.HeadSHA))
	}
	if !c.DeferredUntil.IsZero() {
		facts = append(facts, "*Deferred until*\n"+date(c.DeferredUntil))
	}
	if !c.DecisionDue.IsZero() {
		facts = append(facts, "*Decision due*\n"+date(c.DecisionDue))
	}
	title := mrLink(c.Project, c.MRIID, c.MRURL)
	if c.Title != "" {
		title = md("%s %s", title, clip(c.Title, maxOutsideShort))
	}
	if c.Author != "" {
		title = md("%s\nby %s", title, clip(c.Author, maxOutsideShort))
	}
	bs = append(bs, fielded(title, facts)...)
	if len(c.Signals) > 0 {
		bs = append(bs, sections("*Why*", signalLines(c.Signals))...)
	}

	if c.State == bot.StateIntake {
		var fields []markup
		for _, f := range c.IntakeMissing {
			fields = append(fields, md("*%s*\n%s", clip(f.ID, maxOutsideShort), clip(f.Text, maxOutside)))
		}
		bs = append(bs, fielded(md(":memo: Waiting for %s to answer the intake:", c.Filer), fields)...)
		bs = append(bs, contextBlock("Answer each field as a line `field: answer` in this thread."))
		return compact(append(bs, actions(c, id)))
	}

	if len(c.Artifacts) > 0 {
		var lines []markup
		missing := false
		for _, a := range c.Artifacts {
			if a.By != "" {
				lines = append(lines, md(":white_check_mark: %s by %s", code(a.Kind), a.By))
			} else {
				lines, missing = append(lines, md(":hourglass: %s missing", code(a.Kind))), true
			}
		}
		bs = append(bs, sections("*Artifacts*", lines)...)
		if missing && c.AskedOf != "" {
			bs = append(bs, contextBlock(md("Asked of %s · add one with `/threatgate artifact %s %s` or the Add artifact button.", c.AskedOf, id, "<kind> <link>")))
		}
	}
	if c.Approvals != nil {
		var fields []markup
		for _, r := range c.Approvals {
			mark := markup(":hourglass:")
			if r.Filled >= r.Count {
				mark = ":white_check_mark:"
			}
			fields = append(fields, md("*%s*\n%s %d of %d", r.Group, mark, r.Filled, r.Count))
		}
		text := md("*Approvals* at %s", shortSHA(c.HeadSHA))
		if len(fields) == 0 {
			text += ": none required"
		}
		bs = append(bs, fielded(text, fields)...)
		if c.RiskCeiling > 0 {
			var risk markup
			switch {
			case !c.RiskRecorded:
				risk = md("*Residual risk*: not recorded (at most %d; `/threatgate risk %s %s`)", c.RiskCeiling, id, "<1-25>")
			case c.Risk > c.RiskCeiling && !c.RiskAccepted:
				risk = md(":warning: *Residual risk*: %d, above %d: needs a %s approval", c.Risk, c.RiskCeiling, bot.RoleRiskAcceptance)
			case c.RiskToValidate:
				risk = md("*Residual risk*: %d (at most %d), not validated yet: `/threatgate risk %s --validate`", c.Risk, c.RiskCeiling, id)
			default:
				risk = md("*Residual risk*: %d (at most %d)", c.Risk, c.RiskCeiling)
			}
			bs = append(bs, section(risk))
		}
	}
	if len(c.Actions) > 0 || c.ActionsDone > 0 {
		var lines []markup
		for _, a := range c.Actions {
			line := md("%d. %s · %s", a.N, clip(a.Text, maxOutsideShort), a.Owner)
			if !a.Due.IsZero() {
				line += md(" · due %s", a.Due.UTC().Format("2006-01-02"))
			}
			lines = append(lines, line)
		}
		bs = append(bs, sections(md("*Action items*: %d open, %d done", len(c.Actions), c.ActionsDone), lines)...)
	}
	if len(c.UnknownAuthors) > 0 {
		bs = append(bs, contextBlock(md(":grey_question: Commit authors not in the policy: %s", list(c.UnknownAuthors))))
	}
	if len(c.Waiting) > 0 {
		bs = append(bs, section(md("*Waiting on* %s", people(c.Waiting, users))))
	}
	return compact(append(bs, actions(c, id)))
}

// actions is the card's row of buttons, nil once the escalation no longer
// waits on anyone (or before it has an id a click could name).
func actions(c *bot.CardData, id string) sl.Block {
	if !c.State.Active() || !validEscalation(id) {
		return nil
	}
	var els []sl.BlockElement
	for _, b := range buttons {
		if c.State == bot.StateIntake && !b.inIntake {
			continue
		}
		a := Action{Verb: b.verb, Escalation: id, Head: c.HeadSHA}
		el := sl.NewButtonBlockElement(a.ID(), a.Value(), plain(b.label, 75))
		el.Style = b.style
		els = append(els, el)
	}
	return sl.NewActionBlock("threatgate:actions", els...)
}

// CardText is the plain text Slack shows in notifications and to screen
// readers for the card: the first line of bot.RenderCardText, escaped.
func CardText(c *bot.CardData, id string) string {
	if c == nil {
		return ""
	}
	return fallback(bot.RenderCardText(c, id))
}

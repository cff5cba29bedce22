package bot

import (
	"fmt"
	"strings"
)

// RenderText writes a notice as plain text (Markdown-safe), the idiom of
// GitLab notes and the console; id is the escalation's id (IDPlaceholder
// before the store gives one). Text from outside is written as it is:
// each surface neutralises mentions and quick actions in what it posts
// (gitlab.Neutralize, the console's neutralize).
func RenderText(n *Notice, id string) string {
	if n == nil {
		return ""
	}
	if id == "" {
		id = IDPlaceholder
	}
	switch n.Kind {
	case NoticeOpened:
		return summaryText(n, id)
	case NoticeFiled:
		return "Filed. " + summaryText(n, id)
	case NoticeSelfFiled:
		return "The merge request needs a security review on its own: " + summaryText(n, id)
	case NoticeIntakeAsked:
		return fmt.Sprintf("Manual escalation %s of %s!%d (%s %s) by %s: %s\nBefore it counts as filed, %s, please answer each as a line \"field: answer\" in this thread:%s",
			id, n.Project, n.MRIID, n.Tier, n.TierName, n.By, n.Text, n.By, fieldLines(n.Fields))
	case NoticeTierRaised:
		return fmt.Sprintf("%s: tier raised from %s to %s (score %d).\n%s", id, n.FromTier, n.Tier, n.Score, requirementsText(n.Requirements, id))
	case NoticeRetiered:
		return fmt.Sprintf("%s re-tiered from %s to %s by %s: %s\n%s", id, n.FromTier, n.Tier, n.By, n.Text, requirementsText(n.Requirements, id))
	case NoticeReady:
		return fmt.Sprintf("%s has every required artifact and is ready for review.", id)
	case NoticeBackInReview:
		return fmt.Sprintf("%s is back in review: new commits at %s made earlier decisions stale.", id, shortSHA(n.SHA))
	case NoticeApproved:
		return fmt.Sprintf("%s approved (%s %s).\n%s", id, n.Tier, n.TierName, decisionsText(n.Decisions))
	case NoticeRejected:
		return fmt.Sprintf("%s rejected.\n%s", id, decisionsText(n.Decisions))
	case NoticeDisputed:
		return fmt.Sprintf("%s is disputed: it has both approvals and rejections. An arbiter (%s) decides with /approve or /threatgate reject.", id, strings.Join(n.Arbiters, ", "))
	case NoticeDissent:
		return fmt.Sprintf("Dissent from %s on %s, recorded: %s", n.By, id, n.Text)
	case NoticeWithdrawn:
		return fmt.Sprintf("%s withdrawn by %s: %s", id, n.By, n.Text)
	case NoticeClosed:
		return fmt.Sprintf("%s withdrawn: the merge request was closed.", id)
	case NoticeReopened:
		return fmt.Sprintf("%s resumed: the merge request was reopened.", id)
	case NoticeResumed:
		if n.Requirements == nil {
			return fmt.Sprintf("%s is back in review: %s. Its tier %s is no longer in the policy; someone in %s must re-tier it.", id, n.Why, n.Tier, strings.Join(n.Retiers, ", "))
		}
		return fmt.Sprintf("%s is back in review as %s: %s.\n%s", id, n.Tier, n.Why, requirementsText(n.Requirements, id))
	case NoticeDeferralEnded:
		if n.Why != "" {
			return fmt.Sprintf("%s: the deferral has ended, as %s; back to %s.", id, n.Why, n.State)
		}
		return fmt.Sprintf("%s: the deferral has ended; back to %s.", id, n.State)
	case NoticeBypass:
		return fmt.Sprintf("BYPASS: %s (%s!%d) was merged at %s while %s, without the security approval its tier %s requires for that commit.", id, n.Project, n.MRIID, shortSHA(n.SHA), n.State, n.Tier)
	case NoticeAnswer:
		return n.Text
	case NoticeNudge:
		return nudgeText(n, id)
	case NoticeHandoff:
		why := "nobody has responded in time"
		if n.By != "" {
			why = n.By + " is away"
		}
		return fmt.Sprintf("%s is handed off to %s because %s: %s, please review it.", id, strings.Join(n.Groups, ", "), why, strings.Join(n.AskedOf, ", "))
	case NoticeLapsed:
		return fmt.Sprintf("LAPSED: %s (%s!%d, %s %s) passed its decision deadline (%s) while %s; on-call has been paged.",
			id, n.Project, n.MRIID, n.Tier, n.TierName, n.Due.UTC().Format("2006-01-02 15:04 MST"), strings.ReplaceAll(string(n.State), "_", " "))
	case NoticeArtifactsAsked:
		var kinds []string
		for _, f := range n.Fields {
			kinds = append(kinds, f.ID)
		}
		return fmt.Sprintf("%s needs %s from %s.%s\nHand each in with /threatgate artifact %s <kind> <link-or-text>, or, in this thread, a reply \"<kind>: <link-or-text>\".",
			id, strings.Join(kinds, ", "), strings.Join(n.AskedOf, ", "), fieldLines(n.Fields), id)
	case NoticeForged:
		return fmt.Sprintf("FORGED STATUS: %s found the gate's status %q on %s set by %s; it is reset to %q.", id, n.Found, shortSHA(n.SHA), n.FoundBy, n.Reset)
	}
	return fmt.Sprintf("%s: %s", id, n.Kind)
}

// summaryText is the opening of an escalation: tier, signals with their
// evidence, what is required, who approves, and the deadlines.
func summaryText(n *Notice, id string) string {
	s := n.Summary
	if s == nil {
		s = &Summary{}
	}
	var b strings.Builder
	kind := "Security review required"
	if s.Manual {
		kind = "Manual security escalation"
		if s.Urgent {
			kind = "URGENT manual security escalation"
		}
	}
	fmt.Fprintf(&b, "%s: %s, tier %s (%s)", kind, id, n.Tier, n.TierName)
	if !s.Manual {
		fmt.Fprintf(&b, ", score %d", n.Score)
	}
	b.WriteString(".\n")
	if s.Manual {
		fmt.Fprintf(&b, "Filed by %s: %s\n", s.Filer, s.Reason)
		for _, f := range s.Intake {
			fmt.Fprintf(&b, "- %s: %s\n", f.ID, f.Text)
		}
	}
	if len(s.Signals) > 0 {
		b.WriteString("Signals:\n")
		for _, sg := range s.Signals {
			fmt.Fprintf(&b, "- %s (%s, +%d)\n", sg.ID, sg.Category, sg.Weight)
			for i, ev := range sg.Evidence {
				if i == 3 {
					fmt.Fprintf(&b, "  - and %d more\n", len(sg.Evidence)-3)
					break
				}
				fmt.Fprintf(&b, "  - %s\n", ev)
			}
		}
	}
	b.WriteString(requirementsText(n.Requirements, id))
	fmt.Fprintf(&b, "\nFirst response due %s; decision due %s.", s.FirstResponseDue.UTC().Format("2006-01-02 15:04 MST"), s.DecisionDue.UTC().Format("2006-01-02 15:04 MST"))
	return b.String()
}

// requirementsText says what a tier asks for: artifacts, approvals,
// checklist.
func requirementsText(r *Requirements, id string) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	if len(r.Artifacts) > 0 {
		var names []string
		for _, a := range r.Artifacts {
			names = append(names, fmt.Sprintf("%s (%s)", a.ID, a.Text))
		}
		fmt.Fprintf(&b, "Artifacts required: %s. Add each with /threatgate artifact %s <kind> <link>.\n", strings.Join(names, ", "), id)
	}
	var rows []string
	for _, a := range r.Approvals {
		rows = append(rows, fmt.Sprintf("%d from %s (%s)", a.Count, a.Group, a.Role))
	}
	fmt.Fprintf(&b, "Approvals: %s.", strings.Join(rows, ", "))
	if len(r.Review) > 0 {
		fmt.Fprintf(&b, " Review: %s.", strings.Join(r.Review, ", "))
	}
	if len(r.Inform) > 0 {
		fmt.Fprintf(&b, " Informed: %s.", strings.Join(r.Inform, ", "))
	}
	if len(r.Checklist) > 0 {
		fmt.Fprintf(&b, "\nEach approver answers the checklist: %s.", strings.Join(r.Checklist, ", "))
	}
	return b.String()
}

// decisionsText lists decisions with their rationale.
func decisionsText(ds []Decision) string {
	var b strings.Builder
	for _, x := range ds {
		if x.Stale {
			continue
		}
		role := x.Group
		if x.Arbiter {
			role = "arbiter"
		}
		fmt.Fprintf(&b, "- %s", x.By)
		if role != "" {
			fmt.Fprintf(&b, " (%s)", role)
		}
		if x.Rationale != "" {
			fmt.Fprintf(&b, ": %s", x.Rationale)
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// fieldLines writes fields as "\nid: text" lines.
func fieldLines(fs []Field) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n%s: %s", f.ID, f.Text)
	}
	return b.String()
}

// nudgeText is a reminder: what the escalation waits for from whom, and by
// when.
func nudgeText(n *Notice, id string) string {
	who := strings.Join(n.AskedOf, ", ")
	due := ""
	if !n.Due.IsZero() {
		due = " by " + n.Due.UTC().Format("2006-01-02 15:04 MST")
	}
	switch {
	case strings.HasPrefix(n.Why, "action:"):
		return fmt.Sprintf("Reminder for %s: action item %s on %s was due%s: %s", who, strings.TrimPrefix(n.Why, "action:"), id, due, n.Text)
	case n.Why == "artifact":
		return fmt.Sprintf("Reminder for %s: %s still needs its artifacts (%d%% of the decision window has passed; decision due%s).", who, id, n.Threshold, due)
	}
	return fmt.Sprintf("Reminder for %s: %s waits for your decision (%d%% of the decision window has passed; decision due%s).", who, id, n.Threshold, due)
}

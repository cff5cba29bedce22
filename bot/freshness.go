package bot

import (
	"strings"
	"time"
)

// Rules for commands written where there is no live session (an MR
// comment): when they were written and which code their author saw. Every
// surface that receives such commands uses them.

// MaxCommandAge is how old a command that decides on the head (HeadBound)
// may be when it arrives: a resent or long-delayed old comment must not
// decide about what was pushed since.
const MaxCommandAge = 15 * time.Minute

// MaxClockSkew is how far after threatgate's clock a command may be dated.
const MaxClockSkew = time.Minute

// CommandFresh checks when a command was written (created, as the source of
// truth gives it) against when it arrived and now: missing, from the
// future (beyond MaxClockSkew), or, for a head-bound verb, older than
// MaxCommandAge on arrival is refused with a Problem that says why.
func CommandFresh(v Verb, created, arrived, now time.Time) error {
	f := verbField(v)
	switch {
	case created.IsZero():
		return problemf(f, "the source gives no time for this command, so threatgate cannot tell when it was written; nothing was run")
	case created.After(now.Add(MaxClockSkew)):
		return problemf(f, "this command is dated %s, after threatgate's clock (%s); a command from the future is not trusted, nothing was run", created.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case HeadBound(v) && arrived.Sub(created) > MaxCommandAge:
		return problemf(f, "this command was written at %s, more than %s before it reached threatgate; write it again", created.UTC().Format(time.RFC3339), MaxCommandAge)
	}
	return nil
}

// HeadVersion is one version of an MR's diff: its head and when it was
// made.
type HeadVersion struct {
	ID        int64
	HeadSHA   string
	CreatedAt time.Time
}

// SeenHead returns the head a command written at created saw: that of the
// newest version made at or before it (ties go to the higher id); false
// when there is none.
func SeenHead(vs []HeadVersion, created time.Time) (string, bool) {
	var best HeadVersion
	found := false
	for _, v := range vs {
		if v.HeadSHA == "" || v.CreatedAt.IsZero() || v.CreatedAt.After(created) {
			continue
		}
		if !found || v.CreatedAt.After(best.CreatedAt) || v.CreatedAt.Equal(best.CreatedAt) && v.ID > best.ID {
			best, found = v, true
		}
	}
	return best.HeadSHA, found
}

// MovedSince is the refusal of a head-bound command whose author saw
// another head than the MR's current one.
func MovedSince(v Verb, seen, head string) error {
	return problemf(verbField(v), "the merge request moved from %s to %s since your comment; review the new commits and write the command again", shortSHA(seen), shortSHA(head))
}

// ScopeOfComment refuses a command in a comment on project!iid that acts
// on or shows another MR: an escalation of another MR, another escalation
// than this MR's (esc, "" when it has none), or the backlog of every
// project. A comment speaks for its own MR.
func ScopeOfComment(c *Command, project string, iid int64, esc string) error {
	f := verbField(c.Verb)
	switch {
	case c.Verb == VerbBacklog:
		// The backlog lists every project's open escalations: not for an
		// MR's comment thread, which anyone who can comment reads.
		return problemf(f, "the backlog lists escalations of every project, so it is read in chat or on the dashboard, not in a merge request comment")
	case c.Verb == VerbEscalate && (!strings.EqualFold(c.MR.Project, project) || c.MR.IID != iid):
		return problemf(f, "a comment here can only escalate this merge request (%s!%d); escalate %s!%d from chat or from a comment on it", project, iid, c.MR.Project, c.MR.IID)
	case c.Escalation != "" && c.Verb != VerbEscalate && c.Escalation != esc:
		return problemf(f, "%s is not this merge request's escalation; use the command on its own MR or in its chat thread", c.Escalation)
	}
	return nil
}

package bot

import (
	"slices"
	"strconv"
	"strings"

	"github.com/threatgate/threatgate/policies"
)

// wrote reports whether person pr is one of authors, which holds GitLab
// usernames and, for commits, e-mail addresses (matched against every
// address of the person, without regard to case).
func wrote(pr *policies.Person, authors []string) bool {
	if pr == nil {
		return false
	}
	for _, a := range authors {
		if a == "" {
			continue
		}
		a = strings.TrimSpace(a)
		// GitLab keeps the case a username was registered with; policies
		// are usually written in lower case.
		if (pr.GitLab != "" && strings.EqualFold(a, pr.GitLab)) || strings.EqualFold(a, pr.ID) {
			return true
		}
		if id, user, ok := noreply(a); ok && ((pr.GitLabID != 0 && id == pr.GitLabID) || (pr.GitLab != "" && strings.EqualFold(user, pr.GitLab))) {
			return true
		}
		for _, m := range pr.Emails {
			if strings.EqualFold(a, m) {
				return true
			}
		}
	}
	return false
}

// UnknownAuthors returns the authors and committers of e's commits (GitLab
// gives their e-mail addresses) that match nobody in the policy, so that an
// approver sees who else wrote the change. They do not stop anyone from
// approving: only a match can.
func UnknownAuthors(e *Escalation, pol *policies.Policy) []string {
	if e == nil || pol == nil {
		return nil
	}
	var out []string
	for _, a := range e.CommitAuthors {
		if !slices.ContainsFunc(pol.People, func(pr *policies.Person) bool { return wrote(pr, []string{a}) }) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// noreply reads GitLab's private commit e-mail addresses: "<id>-<username>@
// users.noreply.<host>" and the older "<username>@users.noreply.<host>"
// (id 0). A commit made in the web IDE by someone who hides their e-mail
// carries one.
func noreply(addr string) (id int64, username string, ok bool) {
	local, domain, found := strings.Cut(addr, "@")
	if !found || !strings.HasPrefix(strings.ToLower(domain), "users.noreply.") || local == "" {
		return 0, "", false
	}
	if n, user, dash := strings.Cut(local, "-"); dash && user != "" {
		if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
			return v, user, true
		}
	}
	return 0, local, true
}

package gitlab

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// FetchMR reads merge request iid of project (a path such as "shop/api",
// or a numeric id) as GitLab shows it now: the MR, all its diffs, the
// e-mail addresses of its commits' authors and committers (GitLab's
// commits API gives no usernames), and the gate's status on its head: the
// newest commit status named StatusName, Ours when the token's own user
// set it. In GateExternalStatusCheck mode the status is the MR's external
// status check; GitLab does not say who answered one, so Ours is always
// true there. Status is never nil (its State is "" when there is none),
// except for a ReadOnly client, which reads no status.
// The result is an MRSeen input for the engine.
//
// Diffs and commits are cached per MR head (and base): a second fetch at
// the same head asks GitLab only for the MR and the status. The token's
// own username, needed to tell threatgate's statuses from forged ones, is
// asked once. Errors are those of the Forge methods (RateLimitError,
// PermanentError, or retryable). Safe for concurrent use.
func (c *Client) FetchMR(ctx context.Context, project string, iid int64) (*bot.MRInput, error) {
	mi, _, err := c.FetchMRPartial(ctx, project, iid)
	return mi, err
}

// FetchMRPartial is FetchMR that also says whether what it read of the
// diff may be short of the MR's whole diff (partial): GitLab gave no
// file at all (an MR whose diff it is still preparing, or an empty one),
// left files out (changes_count "1000+": more than its limit), or left
// the text of a file out (too large, collapsed). The engine decides on
// what was read either way; partial tells the caller not to take it as
// the MR's last word. An empty diff is not cached, so that the next
// fetch at the same head asks again.
func (c *Client) FetchMRPartial(ctx context.Context, project string, iid int64) (*bot.MRInput, bool, error) {
	op := fmt.Sprintf("fetch MR %s!%d", project, iid)
	if project == "" || iid <= 0 {
		return nil, false, &PermanentError{Op: op, Fix: "want a project path and a positive merge request number"}
	}
	mr, _, err := c.api.MergeRequests.GetMergeRequest(project, iid, nil, reqOpts(ctx))
	if err != nil {
		return nil, false, c.fail(op, err)
	}
	head := mr.SHA
	if head == "" {
		head = mr.DiffRefs.HeadSha
	}

	key := cacheKey(mr, project, head)
	c.mu.Lock()
	f, hit := c.diffs.get(key)
	c.mu.Unlock()
	if !hit {
		var keep bool
		f, keep, err = c.fetchChanges(ctx, op, project, iid, head)
		if err != nil {
			return nil, false, err
		}
		// No file yet is what GitLab shows while it prepares a new
		// MR's diff: not to be kept for the head.
		if keep && key != "" && len(f.changes) > 0 {
			c.mu.Lock()
			c.diffs.put(key, f)
			c.mu.Unlock()
		}
	}

	var status *bot.ForgeStatus
	if !c.cfg.ReadOnly {
		// A dry run sets no status, so what GitLab shows is not its
		// business (it may be another threatgate's): nil, unknown.
		var headPipeline int64
		if hp := mr.HeadPipeline; hp != nil && hp.SHA == head {
			headPipeline = hp.ID
		}
		status, err = c.gateStatus(ctx, op, project, iid, head, headPipeline)
		if err != nil {
			return nil, false, err
		}
	}
	partial := f.partial || len(f.changes) == 0 || strings.HasSuffix(strings.TrimSpace(mr.ChangesCount), "+")
	return &bot.MRInput{
		Action:        bot.MRSeen,
		Fetched:       true,
		MR:            toMergeRequest(mr, project, head, f.changes),
		CommitAuthors: slices.Clone(f.authors),
		Status:        status,
	}, partial, nil
}

// cacheKey identifies what an MR's diff depends on: the project, the MR,
// its head and its base. "" when the head is unknown (nothing to cache).
func cacheKey(mr *gl.MergeRequest, project string, head string) string {
	if head == "" {
		return ""
	}
	p := project
	if mr.ProjectID != 0 {
		p = strconv.FormatInt(mr.ProjectID, 10)
	}
	return fmt.Sprintf("%s!%d@%s..%s", p, mr.IID, mr.DiffRefs.BaseSha, head)
}

// fetchChanges reads all pages of the MR's diffs and commits. keep is
// false when the MR moved while they were read (the newest commit is not
// head), so that a mixed result is not cached.
func (c *Client) fetchChanges(ctx context.Context, op, project string, iid int64, head string) (f fetched, keep bool, err error) {
	dopt := &gl.ListMergeRequestDiffsOptions{ListOptions: gl.ListOptions{PerPage: 100}}
	diffs, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.MergeRequestDiff, *gl.Response, error) {
		return c.api.MergeRequests.ListMergeRequestDiffs(project, iid, dopt, reqOpts(ctx), p)
	})
	if err != nil {
		return fetched{}, false, c.fail(op+": list diffs", err)
	}
	copt := &gl.GetMergeRequestCommitsOptions{ListOptions: gl.ListOptions{PerPage: 100}}
	commits, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.Commit, *gl.Response, error) {
		return c.api.MergeRequests.GetMergeRequestCommits(project, iid, copt, reqOpts(ctx), p)
	})
	if err != nil {
		return fetched{}, false, c.fail(op+": list commits", err)
	}

	f.changes = make([]policies.Change, 0, len(diffs))
	tooLarge := 0
	for _, d := range diffs {
		if d == nil {
			continue
		}
		if d.TooLarge || (d.Collapsed && d.Diff == "") {
			tooLarge++
		}
		f.changes = append(f.changes, policies.Change{
			OldPath:     d.OldPath,
			NewPath:     d.NewPath,
			Diff:        d.Diff,
			NewFile:     d.NewFile,
			RenamedFile: d.RenamedFile,
			DeletedFile: d.DeletedFile,
		})
	}
	if tooLarge > 0 {
		// GitLab leaves out the text of very large diffs; signals on their
		// paths still fire, signals on their lines cannot.
		c.log.Warn("diffs too large to read", "project", project, "mr_iid", iid, "files", tooLarge)
		f.partial = true
	}
	seen := make(map[string]bool)
	for _, cm := range commits {
		if cm == nil {
			continue
		}
		for _, e := range append([]string{cm.AuthorEmail, cm.CommitterEmail}, coAuthors(cm.Message)...) {
			e = strings.ToLower(strings.TrimSpace(e))
			if e != "" && !seen[e] {
				seen[e] = true
				f.authors = append(f.authors, e)
			}
		}
	}
	// GitLab lists an MR's commits newest first.
	keep = len(commits) == 0 || commits[0] == nil || commits[0].ID == head
	return f, keep, nil
}

// gateStatus returns the gate as GitLab shows it on head: the newest
// commit status named StatusName, or in external status check mode the
// MR's status check. State is "" when there is none, and when the head
// pipeline (headPipeline, 0 when unknown) does not carry it: a re-run
// pipeline on the same commit starts without the gate, and only a status
// inside the head pipeline blocks the merge.
func (c *Client) gateStatus(ctx context.Context, op, project string, iid int64, head string, headPipeline int64) (*bot.ForgeStatus, error) {
	st := &bot.ForgeStatus{SHA: head}
	if head == "" {
		return st, nil
	}
	if c.cfg.Gate == GateExternalStatusCheck {
		opt := &gl.ListProjectMergeRequestExternalStatusChecksOptions{ListOptions: gl.ListOptions{PerPage: 100}}
		checks, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.MergeStatusCheck, *gl.Response, error) {
			return c.api.ExternalStatusChecks.ListProjectMergeRequestExternalStatusChecks(project, iid, opt, reqOpts(ctx), p)
		})
		if err != nil {
			return nil, c.fail(op+": list status checks", err)
		}
		for _, ch := range checks {
			if ch != nil && ch.Name == c.cfg.StatusCheckName {
				// GitLab does not say who answered a status check; only
				// holders of a token with api scope can.
				st.State = fromCheckStatus(ch.Status)
				st.Ours = true
				break
			}
		}
		return st, nil
	}
	newest, err := c.newestStatus(ctx, project, head, "")
	if err != nil {
		return nil, c.fail(op+": list statuses", err)
	}
	if newest == nil {
		return st, nil
	}
	if headPipeline != 0 && newest.PipelineID != headPipeline {
		return st, nil
	}
	st.State = newest.Status
	st.Author = newest.Author.Username
	me, err := c.whoAmI(ctx)
	if err != nil {
		return nil, err
	}
	st.Ours = st.Author != "" && st.Author == me
	return st, nil
}

// newestStatus returns the newest commit status named StatusName on sha,
// set by author ("" for anyone); nil when there is none. Errors are
// client-go's.
func (c *Client) newestStatus(ctx context.Context, project, sha, author string) (*gl.CommitStatus, error) {
	opt := &gl.GetCommitStatusesOptions{ListOptions: gl.ListOptions{PerPage: 100}, Name: gl.Ptr(c.cfg.StatusName)}
	all, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.CommitStatus, *gl.Response, error) {
		return c.api.Commits.GetCommitStatuses(project, sha, opt, reqOpts(ctx), p)
	})
	if err != nil {
		return nil, err
	}
	var newest *gl.CommitStatus
	for _, s := range all {
		if s == nil || s.Name != c.cfg.StatusName || (author != "" && s.Author.Username != author) {
			continue
		}
		// Ids grow with time; created_at may tie.
		if newest == nil || s.ID > newest.ID {
			newest = s
		}
	}
	return newest, nil
}

// fromCheckStatus maps an external status check's status to the gate's.
func fromCheckStatus(s string) string {
	switch s {
	case "passed":
		return bot.StatusSuccess
	case "failed":
		return bot.StatusFailed
	case "pending":
		return bot.StatusPending
	}
	return s
}

// toMergeRequest builds what the policy evaluates from client-go's MR.
func toMergeRequest(mr *gl.MergeRequest, project, head string, changes []policies.Change) *policies.MergeRequest {
	out := &policies.MergeRequest{
		ID:           mr.ID,
		IID:          mr.IID,
		ProjectID:    mr.ProjectID,
		Title:        mr.Title,
		Description:  mr.Description,
		State:        mr.State,
		SourceBranch: mr.SourceBranch,
		TargetBranch: mr.TargetBranch,
		Labels:       policies.Labels(slices.Clone([]string(mr.Labels))),
		SHA:          head,
		WebURL:       mr.WebURL,
		Changes:      slices.Clone(changes),
	}
	if out.Labels == nil {
		out.Labels = policies.Labels{}
	}
	if out.Changes == nil {
		out.Changes = []policies.Change{}
	}
	if mr.Author != nil {
		out.Author = policies.User{Username: mr.Author.Username, Name: mr.Author.Name}
	}
	if mr.UpdatedAt != nil {
		out.UpdatedAt = *mr.UpdatedAt
	}
	switch {
	case mr.MergeUser != nil:
		out.MergedBy = policies.User{Username: mr.MergeUser.Username, Name: mr.MergeUser.Name}
	case mr.MergedBy != nil: //nolint:staticcheck // older GitLab versions fill only merged_by
		out.MergedBy = policies.User{Username: mr.MergedBy.Username, Name: mr.MergedBy.Name}
	}
	if mr.MergedAt != nil {
		out.MergedAt = *mr.MergedAt
	}
	if mr.References != nil {
		out.References.Full = mr.References.Full
	}
	switch {
	case strings.Contains(project, "/"):
		out.PathWithNamespace = project
	case out.References.Full != "":
		if i := strings.LastIndexByte(out.References.Full, '!'); i > 0 {
			out.PathWithNamespace = out.References.Full[:i]
		}
	}
	return out
}

// ParseMRURL reads a merge request URL such as
// https://gitlab.example.com/group/sub/proj/-/merge_requests/12 (anything
// after the number, such as /diffs, a query or a fragment, is ignored).
// baseURL is scheme://host[:port]: on an instance under a relative URL
// the prefix reads as part of the project path. A malformed URL is a
// *bot.Problem whose message never repeats credentials or the query.
func ParseMRURL(u string) (baseURL, project string, iid int64, err error) {
	// One parser for merge request URLs: the command grammar's.
	ref, err := bot.ParseMRURL(u)
	if err != nil {
		return "", "", 0, err
	}
	p, perr := url.Parse(strings.TrimSpace(u))
	if perr != nil {
		return "", "", 0, &bot.Problem{Msg: "want a merge request URL; this one is not a valid URL"}
	}
	return p.Scheme + "://" + p.Host, ref.Project, ref.IID, nil
}

// validProjectPath reports whether p is a project path with its namespace:
// two or more segments of letters, digits, _ . -, none starting with . or -.
func validProjectPath(p string) bool {
	segs := strings.Split(p, "/")
	if len(segs) < 2 {
		return false
	}
	for _, s := range segs {
		if s == "" || s[0] == '.' || s[0] == '-' {
			return false
		}
		for _, r := range s {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// coAuthorRE reads a Co-authored-by trailer: "Co-authored-by: Name <e-mail>".
var coAuthorRE = regexp.MustCompile(`(?im)^[ \t]*co-authored-by:[^<\n]*<([^<>\s]+@[^<>\s]+)>`)

// coAuthors returns the e-mail addresses a commit message names in
// Co-authored-by trailers: they wrote the change too, so they may not
// approve it.
func coAuthors(msg string) []string {
	var out []string
	for _, m := range coAuthorRE.FindAllStringSubmatch(msg, 20) {
		out = append(out, m[1])
	}
	return out
}

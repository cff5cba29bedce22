package gitlab

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/threatgate/threatgate/bot"
)

// maxDescription is GitLab's limit on a commit status description.
const maxDescription = 255

// noteMarker is appended to every note threatgate posts, so that a retry
// can find the note an earlier attempt posted.
func noteMarker(effectID string) string { return "<!-- threatgate:effect=" + effectID + " -->" }

// SetStatus sets the gate on e.SHA of MR e.MRIID in e.Project to e.Status
// (pending, success, failed), described by e.Body().
//
// In GateStatus mode it posts the commit status StatusName into the MR's
// head pipeline when that pipeline is for e.SHA: a status outside it makes
// a separate external pipeline, and "Pipelines must succeed" looks at the
// head pipeline only. Setting the state the status already has is a
// success. In GateExternalStatusCheck mode it answers the project's
// external status check named StatusCheckName for the MR and e.SHA.
//
// It may run twice for one effect; both modes are idempotent.
func (c *Client) SetStatus(ctx context.Context, e bot.Effect) error {
	if err := c.refuseWrite("set status on %s!%d", e); err != nil {
		return err
	}
	if c.cfg.Gate == GateExternalStatusCheck {
		return c.setStatusCheck(ctx, e)
	}
	op := fmt.Sprintf("set status on %s@%s", e.Project, shortSHA(e.SHA))
	if e.Project == "" || e.SHA == "" {
		return &PermanentError{Op: op, Fix: "the effect names no project or commit"}
	}
	var state gl.BuildStateValue
	switch e.Status {
	case bot.StatusPending:
		state = gl.Pending
	case bot.StatusSuccess:
		state = gl.Success
	case bot.StatusFailed:
		state = gl.Failed
	default:
		return &PermanentError{Op: op, Fix: fmt.Sprintf("want status pending, success or failed, got %q", e.Status)}
	}
	opt := &gl.SetCommitStatusOptions{
		State:       state,
		Name:        gl.Ptr(c.cfg.StatusName),
		Description: gl.Ptr(truncateRunes(e.Body(), maxDescription)),
	}
	if u := c.targetURL(e.Escalation); u != "" {
		opt.TargetURL = gl.Ptr(u)
	}
	if e.MRIID > 0 {
		mr, _, err := c.api.MergeRequests.GetMergeRequest(e.Project, e.MRIID, nil, reqOpts(ctx))
		if err != nil {
			return c.fail(op+": read the MR", err)
		}
		if hp := mr.HeadPipeline; hp != nil && hp.ID != 0 && hp.SHA == e.SHA {
			opt.PipelineID = gl.Ptr(hp.ID)
			// GitLab looks the pipeline up by id, sha and ref: a merge
			// request pipeline runs on refs/merge-requests/:iid/head, not
			// on the source branch.
			if hp.Ref != "" {
				opt.Ref = gl.Ptr(hp.Ref)
			} else if mr.SourceBranch != "" {
				opt.Ref = gl.Ptr(mr.SourceBranch)
			}
		} else if mr.SourceBranch != "" {
			opt.Ref = gl.Ptr(mr.SourceBranch)
		}
	}
	_, _, err := c.api.Commits.SetCommitStatus(e.Project, e.SHA, opt, reqOpts(ctx))
	if err == nil {
		return nil
	}
	if cannotTransition(err) {
		// GitLab refuses to move a pending status to pending (and running
		// to running). That is success when ours already shows the state.
		// The description is not updated then; the next change of state
		// carries the new one.
		me, err := c.whoAmI(ctx)
		if err != nil {
			return err
		}
		newest, lerr := c.newestStatus(ctx, e.Project, e.SHA, "")
		if lerr != nil {
			return c.fail(op+": list statuses", lerr)
		}
		switch {
		case newest != nil && newest.Author.Username == me && sameState(newest.Status, e.Status):
			c.log.Debug("status already set", bot.LogEffectID, e.ID, "project", e.Project, "sha", e.SHA, "state", newest.Status)
			return nil
		case newest != nil && newest.Author.Username != me:
			// Someone else's status of the gate's name came after ours:
			// in the pipeline it replaces ours (GitLab marks the older
			// one retried), yet GitLab still finds ours pending and
			// refuses to set it again. Finish ours, then set a new one,
			// which comes after theirs.
			c.log.Warn("a status of the gate's name set by someone else is newer than threatgate's; setting the gate again over it",
				bot.LogEffectID, e.ID, "project", e.Project, "sha", e.SHA, "author", newest.Author.Username)
			cancel := *opt
			cancel.State = gl.Canceled
			cancel.Description = gl.Ptr("superseded: set again over a status threatgate did not set")
			if _, _, cerr := c.api.Commits.SetCommitStatus(e.Project, e.SHA, &cancel, reqOpts(ctx)); cerr != nil {
				return c.fail(op+": finish threatgate's earlier status", cerr)
			}
			if _, _, err = c.api.Commits.SetCommitStatus(e.Project, e.SHA, opt, reqOpts(ctx)); err == nil {
				return nil
			}
		}
	}
	return c.fail(op, err)
}

// refuseWrite refuses every write of a ReadOnly client, before any
// request: a dry run never changes GitLab, whatever reaches the forge.
func (c *Client) refuseWrite(op string, e bot.Effect) error {
	if !c.cfg.ReadOnly {
		return nil
	}
	return &bot.DeliveryError{Permanent: true, Err: &PermanentError{Op: fmt.Sprintf(op, e.Project, e.MRIID),
		Fix: "this client is read only (gitlab.mode dry_run): threatgate writes nothing to GitLab"}}
}

// cannotTransition reports whether err is GitLab's 400 for a status that
// already has the state asked for ("Cannot transition status via :enqueue
// from :pending").
func cannotTransition(err error) bool {
	var er *gl.ErrorResponse
	return errors.As(err, &er) && er.HasStatusCode(http.StatusBadRequest) &&
		strings.Contains(strings.ToLower(er.Message), "cannot transition status")
}

// sameState reports whether GitLab's state shows the gate's.
func sameState(gitlab, want string) bool {
	if want == bot.StatusPending {
		return gitlab == "pending" || gitlab == "running"
	}
	return gitlab == want
}

// setStatusCheck answers the external status check for e.
func (c *Client) setStatusCheck(ctx context.Context, e bot.Effect) error {
	op := fmt.Sprintf("set status check on %s!%d@%s", e.Project, e.MRIID, shortSHA(e.SHA))
	if e.Project == "" || e.SHA == "" || e.MRIID <= 0 {
		return &PermanentError{Op: op, Fix: "the effect names no project, merge request or commit"}
	}
	var status string
	switch e.Status {
	case bot.StatusPending:
		status = "pending"
	case bot.StatusSuccess:
		status = "passed"
	case bot.StatusFailed:
		status = "failed"
	default:
		return &PermanentError{Op: op, Fix: fmt.Sprintf("want status pending, success or failed, got %q", e.Status)}
	}
	id, err := c.statusCheckID(ctx, op, e.Project)
	if err != nil {
		return err
	}
	_, err = c.api.ExternalStatusChecks.SetProjectMergeRequestExternalStatusCheckStatus(e.Project, e.MRIID,
		&gl.SetProjectMergeRequestExternalStatusCheckStatusOptions{
			SHA:                   gl.Ptr(e.SHA),
			ExternalStatusCheckID: gl.Ptr(id),
			Status:                gl.Ptr(status),
		}, reqOpts(ctx))
	if err != nil {
		if errors.Is(err, gl.ErrNotFound) || gl.HasStatusCode(err, http.StatusBadRequest) || gl.HasStatusCode(err, http.StatusUnprocessableEntity) {
			// The check may have been deleted or replaced: look it up again
			// next time.
			c.mu.Lock()
			delete(c.checks, e.Project)
			c.mu.Unlock()
		}
		return c.fail(op, err)
	}
	return nil
}

// statusCheckID returns the id of the project's external status check
// named StatusCheckName, asking GitLab once per project.
func (c *Client) statusCheckID(ctx context.Context, op, project string) (int64, error) {
	c.mu.Lock()
	id, ok := c.checks[project]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	opt := &gl.ListProjectExternalStatusChecksOptions{ListOptions: gl.ListOptions{PerPage: 100}}
	checks, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.ProjectStatusCheck, *gl.Response, error) {
		return c.api.ExternalStatusChecks.ListProjectExternalStatusChecks(project, opt, reqOpts(ctx), p)
	})
	if err != nil {
		return 0, c.fail(op+": list the project's status checks", err)
	}
	var names []string
	for _, ch := range checks {
		if ch == nil {
			continue
		}
		if ch.Name == c.cfg.StatusCheckName {
			c.mu.Lock()
			c.checks[project] = ch.ID
			c.mu.Unlock()
			return ch.ID, nil
		}
		names = append(names, fmt.Sprintf("%q", ch.Name))
	}
	have := "it has none"
	if len(names) > 0 {
		have = "it has " + strings.Join(names, ", ")
	}
	return 0, &PermanentError{Op: op, Fix: fmt.Sprintf(
		"project %s has no external status check named %q (%s); add one under Settings > Merge requests > Status checks, or use gate %q",
		project, c.cfg.StatusCheckName, have, GateStatus)}
}

// targetURL links a status to the escalation on the dashboard.
func (c *Client) targetURL(escalation string) string {
	if c.cfg.DashboardURL == "" || escalation == "" {
		return ""
	}
	return c.cfg.DashboardURL + "/escalations/" + url.PathEscape(escalation)
}

// PostNote posts e.Body() on MR e.MRIID of e.Project, marked with e.ID.
// The body is neutralised first (Neutralize: no mention, no quick action
// from the text, which may quote what outsiders wrote); the only mentions
// are the GitLab usernames in e.Mention, put before it. Before posting it
// looks for the marker among threatgate's own notes in the MR's 100 newest
// and posts nothing when an earlier attempt did (its answer lost to a timeout), so a retried
// effect never posts twice.
func (c *Client) PostNote(ctx context.Context, e bot.Effect) error {
	if err := c.refuseWrite("post note on %s!%d", e); err != nil {
		return err
	}
	op := fmt.Sprintf("post note on %s!%d", e.Project, e.MRIID)
	if e.Project == "" || e.MRIID <= 0 {
		return &PermanentError{Op: op, Fix: "the effect names no project or merge request"}
	}
	body := noteText(e)
	if e.ID != "" {
		marker := noteMarker(e.ID)
		notes, _, err := c.api.Notes.ListMergeRequestNotes(e.Project, e.MRIID, &gl.ListMergeRequestNotesOptions{
			ListOptions: gl.ListOptions{PerPage: 100, Page: 1},
			OrderBy:     gl.Ptr("created_at"),
			Sort:        gl.Ptr("desc"),
		}, reqOpts(ctx))
		if err != nil {
			return c.fail(op+": list notes", err)
		}
		// Only threatgate's own notes count: anyone can write a marker
		// into a comment to stop a note (a bypass notice) from going out.
		me, err := c.whoAmI(ctx)
		if err != nil {
			return err
		}
		for _, n := range notes {
			if n != nil && n.Author.Username == me && strings.Contains(n.Body, marker) {
				c.log.Debug("note already posted", bot.LogEffectID, e.ID, "project", e.Project, "mr_iid", e.MRIID, "note_id", n.ID)
				return nil
			}
		}
		body += "\n\n" + marker
	}
	_, _, err := c.api.Notes.CreateMergeRequestNote(e.Project, e.MRIID, &gl.CreateMergeRequestNoteOptions{Body: gl.Ptr(body)}, reqOpts(ctx))
	return c.fail(op, err)
}

// AddLabels adds e.Labels to MR e.MRIID of e.Project, keeping the others.
// GitLab itself replaces a scoped label (security-tier::high) of the same
// scope. Adding labels the MR has changes nothing, so a retry is harmless.
func (c *Client) AddLabels(ctx context.Context, e bot.Effect) error {
	if err := c.refuseWrite("add labels to %s!%d", e); err != nil {
		return err
	}
	op := fmt.Sprintf("add labels to %s!%d", e.Project, e.MRIID)
	if len(e.Labels) == 0 {
		return nil
	}
	if e.Project == "" || e.MRIID <= 0 {
		return &PermanentError{Op: op, Fix: "the effect names no project or merge request"}
	}
	for _, l := range e.Labels {
		if strings.TrimSpace(l) == "" || strings.Contains(l, ",") {
			return &PermanentError{Op: op, Fix: fmt.Sprintf("a label name is not empty and has no comma, got %q", l)}
		}
	}
	add := gl.LabelOptions(e.Labels)
	_, _, err := c.api.MergeRequests.UpdateMergeRequest(e.Project, e.MRIID, &gl.UpdateMergeRequestOptions{AddLabels: &add}, reqOpts(ctx))
	return c.fail(op, err)
}

// ErrStatusCheckSignature is returned by VerifyStatusCheck for a request
// whose X-Gitlab-Signature is missing or wrong.
var ErrStatusCheckSignature = errors.New("external status check: missing or wrong X-Gitlab-Signature")

// VerifyStatusCheck checks that an external status check request comes
// from GitLab: X-Gitlab-Signature must be the hex HMAC-SHA256 of body
// under secret, the status check's shared secret. The comparison is in
// constant time. It returns ErrStatusCheckSignature (wrapped) when the
// signature is missing or wrong, another error when no secret is set.
func VerifyStatusCheck(r *http.Request, body []byte, secret bot.Secret) error {
	if secret == "" {
		return errors.New("external status check: no shared secret configured; set the same one on the status check in GitLab and in threatgate")
	}
	got := strings.TrimSpace(r.Header.Get("X-Gitlab-Signature"))
	if got == "" {
		return fmt.Errorf("%w: no signature", ErrStatusCheckSignature)
	}
	sig, err := hex.DecodeString(got)
	if err != nil || len(sig) != sha256.Size {
		return fmt.Errorf("%w: not a hex SHA-256 HMAC", ErrStatusCheckSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return fmt.Errorf("%w: signature does not match", ErrStatusCheckSignature)
	}
	return nil
}

// ParseStatusCheckRequest reads the merge request that an external status
// check request is about. GitLab sends the merge request webhook payload:
// project.path_with_namespace, object_attributes.iid and
// object_attributes.last_commit.id. Verify the request first.
func ParseStatusCheckRequest(body []byte) (project string, iid int64, sha string, err error) {
	var p struct {
		Project struct {
			PathWithNamespace string `json:"path_with_namespace"`
		} `json:"project"`
		ObjectAttributes struct {
			IID        int64 `json:"iid"`
			LastCommit struct {
				ID string `json:"id"`
			} `json:"last_commit"`
		} `json:"object_attributes"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", 0, "", fmt.Errorf("external status check payload: want the merge request webhook JSON: %s", jsonErrText(err))
	}
	project = p.Project.PathWithNamespace
	iid = p.ObjectAttributes.IID
	sha = p.ObjectAttributes.LastCommit.ID
	var probs []string
	if !validProjectPath(project) {
		probs = append(probs, fmt.Sprintf("project.path_with_namespace: want a path such as group/proj, got %q", clip(project, 80)))
	}
	if iid <= 0 {
		probs = append(probs, fmt.Sprintf("object_attributes.iid: want a positive number, got %d", iid))
	}
	if !isSHA(sha) {
		probs = append(probs, fmt.Sprintf("object_attributes.last_commit.id: want a commit SHA, got %q", clip(sha, 80)))
	}
	if len(probs) > 0 {
		return "", 0, "", errors.New("external status check payload: " + strings.Join(probs, "; "))
	}
	return project, iid, sha, nil
}

// jsonErrText describes a JSON decoding error without repeating input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	}
	return "not valid JSON"
}

// isSHA reports whether s looks like a git commit id (SHA-1 or SHA-256).
func isSHA(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// shortSHA abbreviates a commit id for messages, as everywhere.
func shortSHA(s string) string { return bot.ShortSHA(s) }

// truncateRunes cuts s to at most n characters, ending in "..." when cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}

// clip bounds a value repeated in an error.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

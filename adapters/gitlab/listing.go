package gitlab

import (
	"context"
	"fmt"
	"slices"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// MRBrief is what a merge request list says of one MR: enough to tell
// whether threatgate's escalation of it is still current.
type MRBrief struct {
	IID       int64
	SHA       string // the head commit
	State     string // opened, closed, merged, locked
	UpdatedAt time.Time
	// Facts is bot.TierFacts of what the list says of the MR (title,
	// description, labels, target branch, author): with SHA, what decides
	// whether an MR without an escalation must be classified again.
	Facts string
}

// briefMR is what the policy would read of a listed MR, diff aside: the
// fields bot.TierFacts digests, as toMergeRequest fills them from the MR
// itself.
func briefMR(m *gl.BasicMergeRequest) *policies.MergeRequest {
	mr := &policies.MergeRequest{Title: m.Title, Description: m.Description, TargetBranch: m.TargetBranch,
		Labels: policies.Labels(slices.Clone([]string(m.Labels)))}
	if m.Author != nil {
		mr.Author.Username = m.Author.Username
	}
	return mr
}

// PipelineBrief is what a pipeline list says of one pipeline.
type PipelineBrief struct {
	ID        int64
	SHA       string
	UpdatedAt time.Time
}

// listPageSize is how many items one list request asks for (GitLab's
// maximum).
const listPageSize = 100

// maxListRequests bounds the requests of one listing, so that a server
// that never stops paginating cannot keep threatgate busy for ever.
const maxListRequests = 5000

// ListMRs lists the merge requests of project in state ("" for all; else
// opened, closed, merged, locked) updated at or after since (zero: all of
// them), every page. GitLab has no keyset pagination for merge request
// lists, so the list is read in updated_at order and each request starts
// at the newest updated_at read so far (less a millisecond, and GitLab
// compares whole seconds): an MR updated while the list is read moves
// towards the end and is read there, never skipped the way an offset page
// skips an item when the items before it move. An MR read twice counts
// with its newest answer. Errors are those of FetchMR.
func (c *Client) ListMRs(ctx context.Context, project string, state string, since time.Time) ([]MRBrief, error) {
	op := "list merge requests of " + project
	if project == "" {
		return nil, &PermanentError{Op: op, Fix: "want a project path"}
	}
	var st *string
	if state != "" {
		st = gl.Ptr(state)
	}
	return scanByUpdated(ctx, since, func(after time.Time, page int) ([]MRBrief, error) {
		opt := &gl.ListProjectMergeRequestsOptions{
			ListOptions: gl.ListOptions{PerPage: listPageSize, Page: int64(page)},
			State:       st, OrderBy: gl.Ptr("updated_at"), Sort: gl.Ptr("asc"),
		}
		if !after.IsZero() {
			opt.UpdatedAfter = gl.Ptr(after.UTC())
		}
		mrs, _, err := c.api.MergeRequests.ListProjectMergeRequests(project, opt, reqOpts(ctx))
		if err != nil {
			return nil, c.fail(op, err)
		}
		out := make([]MRBrief, 0, len(mrs))
		for _, m := range mrs {
			if m == nil || m.IID <= 0 {
				continue
			}
			b := MRBrief{IID: m.IID, SHA: m.SHA, State: m.State, Facts: bot.TierFacts(briefMR(m))}
			if m.UpdatedAt != nil {
				b.UpdatedAt = *m.UpdatedAt
			}
			out = append(out, b)
		}
		return out, nil
	}, func(b MRBrief) (int64, time.Time) { return b.IID, b.UpdatedAt })
}

// ListPipelines lists the pipelines of project updated after since, every
// page, the way ListMRs lists merge requests. A commit status lands in a
// pipeline (or makes one), so a status set by anyone on an MR's head
// shows here as a pipeline of that SHA updated since.
func (c *Client) ListPipelines(ctx context.Context, project string, since time.Time) ([]PipelineBrief, error) {
	op := "list pipelines of " + project
	if project == "" {
		return nil, &PermanentError{Op: op, Fix: "want a project path"}
	}
	return scanByUpdated(ctx, since, func(after time.Time, page int) ([]PipelineBrief, error) {
		opt := &gl.ListProjectPipelinesOptions{
			ListOptions: gl.ListOptions{PerPage: listPageSize, Page: int64(page)},
			OrderBy:     gl.Ptr("updated_at"), Sort: gl.Ptr("asc"),
		}
		if !after.IsZero() {
			opt.UpdatedAfter = gl.Ptr(after.UTC())
		}
		ps, _, err := c.api.Pipelines.ListProjectPipelines(project, opt, reqOpts(ctx))
		if err != nil {
			return nil, c.fail(op, err)
		}
		out := make([]PipelineBrief, 0, len(ps))
		for _, p := range ps {
			if p == nil {
				continue
			}
			b := PipelineBrief{ID: p.ID, SHA: p.SHA}
			if p.UpdatedAt != nil {
				b.UpdatedAt = *p.UpdatedAt
			}
			out = append(out, b)
		}
		return out, nil
	}, func(b PipelineBrief) (int64, time.Time) { return b.ID, b.UpdatedAt })
}

// scanByUpdated reads a list in ascending updated_at order, page after
// page, each request starting at the newest updated_at read so far: a
// keyset on updated_at, made from updated_after. A page whose items were
// all read already (a run of more than a page with the same updated_at)
// is followed by the next page at the same start. It stops at a short
// page. key gives an item's id and updated_at; an item read twice keeps
// its newest answer; the result is in the order first read.
func scanByUpdated[T any](ctx context.Context, since time.Time, fetch func(after time.Time, page int) ([]T, error), key func(T) (int64, time.Time)) ([]T, error) {
	cursor, page := since, 1
	index := map[int64]int{}
	var out []T
	for range maxListRequests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		items, err := fetch(cursor, page)
		if err != nil {
			return nil, err
		}
		fresh := 0
		var newest, oldest time.Time
		for i, it := range items {
			id, upd := key(it)
			if upd.After(newest) {
				newest = upd
			}
			if i == 0 || upd.Before(oldest) {
				oldest = upd
			}
			if i, ok := index[id]; ok {
				if _, had := key(out[i]); !upd.After(had) {
					continue
				}
				out[i] = it
			} else {
				index[id] = len(out)
				out = append(out, it)
			}
			fresh++
		}
		if len(items) < listPageSize {
			return out, nil
		}
		// Inclusive or exclusive, whole seconds or not: starting a
		// millisecond before the newest read skips nothing at it.
		// A new start that leaves out nothing of this page (a page of
		// ties) would read it again: go on to the next page instead.
		next := newest.Add(-time.Millisecond)
		if fresh > 0 && next.After(cursor) && oldest.Before(next) {
			cursor, page = next, 1
		} else {
			page++
		}
	}
	return nil, fmt.Errorf("listing did not end after %d requests", maxListRequests)
}

package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// ErrNotFound is returned (wrapped) by Client.GetNote when GitLab has no
// such note on the merge request (404), and by Client.UserID when no user
// has the username.
var ErrNotFound = errors.New("gitlab: not found")

// ErrMalformed is returned (wrapped) by Client.GetNote and
// Client.MRVersions when GitLab answered 200 with JSON threatgate cannot
// read, such as a created_at that is not a time. Retrying will not help.
var ErrMalformed = errors.New("gitlab: malformed answer")

// Note is an MR note as GitLab's API returns it: the source of truth for
// who wrote a comment command, what it says and when it was written,
// whatever the Note Hook claimed.
type Note struct {
	ID             int64
	AuthorID       int64  // the author's numeric user id
	AuthorUsername string // the author's username now
	Body           string
	CreatedAt      time.Time // zero when GitLab gave none
	System         bool      // written by GitLab itself ("added 1 commit")
}

// MRVersion is one diff version of a merge request: GitLab records one
// for every push, so HeadSHA was the MR's head from CreatedAt until the
// next version.
type MRVersion struct {
	ID        int64
	HeadSHA   string
	CreatedAt time.Time // zero when GitLab gave none
}

// NoteReader reads what a comment command must be checked against: the
// note as GitLab stores it, the MR's diff versions and the numeric id of a
// username. *Client is one; without one (dry run, demo) the Worker runs no
// comment command but help.
type NoteReader interface {
	// GetNote returns note noteID of MR iid in project. It returns
	// ErrNotFound (wrapped) when GitLab has no such note on that MR.
	GetNote(ctx context.Context, project string, iid, noteID int64) (*Note, error)
	// MRVersions returns every diff version of the MR, in GitLab's order
	// (newest first).
	MRVersions(ctx context.Context, project string, iid int64) ([]MRVersion, error)
	// UserID returns the numeric id of the user who has username now. It
	// returns ErrNotFound (wrapped) when nobody has it.
	UserID(ctx context.Context, username string) (int64, error)
}

var _ NoteReader = (*Client)(nil)

// The username → id cache keeps at most userCacheSize names, each for
// userCacheTTL, so a renamed or recycled username is looked up again
// within the hour.
const (
	userCacheSize = 10_000
	userCacheTTL  = time.Hour
)

type userEntry struct {
	id int64
	at time.Time
}

// readFail is fail for reads whose answer must also be decodable: a 200
// whose body client-go could not decode is ErrMalformed, not a retry.
func (c *Client) readFail(op string, resp *gl.Response, err error) error {
	if err == nil {
		return nil
	}
	if resp != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var te *time.ParseError
		what := "JSON threatgate cannot read"
		if errors.As(err, &te) {
			what = fmt.Sprintf("a time threatgate cannot read (%q)", clip(strings.Trim(te.Value, `"`), 40))
		}
		return &malformedError{op: op, what: what}
	}
	return c.fail(op, err)
}

// malformedError is GitLab answering with something unreadable.
type malformedError struct{ op, what string }

func (e *malformedError) Error() string   { return e.op + ": GitLab answered with " + e.what }
func (e *malformedError) Unwrap() error   { return ErrMalformed }
func (e *malformedError) Permanent() bool { return true }

// GetNote reads note noteID of MR iid in project (GET
// /projects/:id/merge_requests/:iid/notes/:note_id). A 404 is ErrNotFound
// (wrapped, and a *PermanentError); other errors are those of FetchMR.
func (c *Client) GetNote(ctx context.Context, project string, iid, noteID int64) (*Note, error) {
	op := fmt.Sprintf("read note %d of %s!%d", noteID, project, iid)
	if project == "" || iid <= 0 || noteID <= 0 {
		return nil, &PermanentError{Op: op, Fix: "want a project path, a merge request number and a note id"}
	}
	n, resp, err := c.api.Notes.GetMergeRequestNote(project, iid, noteID, reqOpts(ctx))
	if errors.Is(err, gl.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, c.fail(op, err))
	}
	if err != nil {
		return nil, c.readFail(op, resp, err)
	}
	if n == nil {
		return nil, &malformedError{op: op, what: "no note"}
	}
	out := &Note{ID: n.ID, AuthorID: n.Author.ID, AuthorUsername: n.Author.Username, Body: n.Body, System: n.System}
	if n.CreatedAt != nil {
		out.CreatedAt = n.CreatedAt.UTC()
	}
	return out, nil
}

// MRVersions reads every diff version of MR iid in project (GET
// /projects/:id/merge_requests/:iid/versions, all pages).
func (c *Client) MRVersions(ctx context.Context, project string, iid int64) ([]MRVersion, error) {
	op := fmt.Sprintf("list versions of %s!%d", project, iid)
	if project == "" || iid <= 0 {
		return nil, &PermanentError{Op: op, Fix: "want a project path and a positive merge request number"}
	}
	opt := &gl.GetMergeRequestDiffVersionsOptions{ListOptions: gl.ListOptions{PerPage: 100}}
	var last *gl.Response
	vs, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.MergeRequestDiffVersion, *gl.Response, error) {
		v, resp, err := c.api.MergeRequests.GetMergeRequestDiffVersions(project, iid, opt, reqOpts(ctx), p)
		last = resp
		return v, resp, err
	})
	if err != nil {
		return nil, c.readFail(op, last, err)
	}
	out := make([]MRVersion, 0, len(vs))
	for _, v := range vs {
		if v == nil {
			continue
		}
		mv := MRVersion{ID: v.ID, HeadSHA: v.HeadCommitSHA}
		if v.CreatedAt != nil {
			mv.CreatedAt = v.CreatedAt.UTC()
		}
		out = append(out, mv)
	}
	return out, nil
}

// UserID returns the numeric id of the GitLab user whose username is
// username now (GET /users?username=; GitLab matches it without regard to
// case). Answers are cached for an hour (at most 10,000 names), so a
// renamed or recycled username is picked up within the hour; misses are
// not cached. It returns ErrNotFound (wrapped) when nobody has the name.
func (c *Client) UserID(ctx context.Context, username string) (int64, error) {
	op := fmt.Sprintf("look up GitLab user %q", clip(username, 80))
	if !ValidUsername(username) {
		return 0, fmt.Errorf("%w: %w", ErrNotFound, &PermanentError{Op: op, Fix: "not a GitLab username"})
	}
	key := strings.ToLower(username)
	now := c.now()
	c.mu.Lock()
	e, ok := c.users[key]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < userCacheTTL && !now.Before(e.at) {
		return e.id, nil
	}
	users, resp, err := c.api.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr(username)}, reqOpts(ctx))
	if err != nil {
		return 0, c.readFail(op, resp, err)
	}
	for _, u := range users {
		if u != nil && u.ID != 0 && strings.EqualFold(u.Username, username) {
			c.mu.Lock()
			c.cacheUser(key, u.ID, now)
			c.mu.Unlock()
			return u.ID, nil
		}
	}
	c.mu.Lock()
	delete(c.users, key)
	c.mu.Unlock()
	return 0, fmt.Errorf("%w: %w", ErrNotFound, &PermanentError{Op: op, Fix: "GitLab has no user with that username"})
}

// cacheUser remembers id for key; callers hold c.mu. When the cache is
// full, expired names go first, then arbitrary ones.
func (c *Client) cacheUser(key string, id int64, now time.Time) {
	if _, ok := c.users[key]; !ok && len(c.users) >= userCacheSize {
		for k, e := range c.users {
			if now.Sub(e.at) >= userCacheTTL {
				delete(c.users, k)
			}
		}
		for k := range c.users {
			if len(c.users) < userCacheSize {
				break
			}
			delete(c.users, k)
		}
	}
	c.users[key] = userEntry{id: id, at: now}
}

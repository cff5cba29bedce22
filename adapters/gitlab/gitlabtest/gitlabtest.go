// Package gitlabtest is a fake GitLab for tests: an httptest.Server that
// answers the parts of the REST API (/api/v4) threatgate uses, from
// in-memory state that tests seed and inspect. It is imported only by
// tests.
//
// # Basics
//
//	srv := gitlabtest.New(t)
//	srv.AddMR(gitlabtest.MR{Project: "shop/api", ProjectID: 7, IID: 12, SHA: "abc1234...", Author: "ann"})
//	c, _ := gitlab.New(gitlab.Config{BaseURL: srv.URL, Token: gitlabtest.Token})
//
// Projects are addressed by numeric id or by URL-encoded path, as GitLab
// does. Requests must carry PRIVATE-TOKEN equal to Server.Token (401
// otherwise); GET /user answers Server.BotUser, who is the author of every
// status and note created through the API. Lists honour per_page and page
// and set X-Page, X-Per-Page, X-Total, X-Total-Pages, X-Next-Page,
// X-Prev-Page and Link the way GitLab does.
//
// Endpoints: GET /user; GET /users (?username=); GET
// /projects/:id/merge_requests (state, updated_after at or after,
// order_by created_at or updated_at, sort); GET /projects/:id/pipelines
// (updated_after strictly after, order_by id or updated_at, sort); GET and PUT
// /projects/:id/merge_requests/:iid; GET .../diffs, .../commits,
// .../versions, .../status_checks; GET and POST .../notes; GET
// .../notes/:note_id; POST .../status_check_responses; GET
// /projects/:id/repository/commits/:sha/statuses; POST
// /projects/:id/statuses/:sha; GET /projects/:id/external_status_checks.
//
// Notes are served as the fake stores them, never as a webhook claims:
// AddMRNote records the author's numeric id and username, the body and
// created_at when the test creates the note. Users have ids a test can
// change (SetUser, RenameUser) to model renamed and recycled usernames.
// Every head an MR gets (AddMR, Push) is a diff version created at that
// moment, listed newest first as GitLab does. Times come from SetNow's
// clock (time.Now by default), and so does every answer's Date header
// (GitLab's clock). A pipeline's updated_at moves when it is made and
// when a status lands in it. Requests are counted by endpoint
// (CallsByEndpoint).
//
// Commit statuses follow GitLab's rules: a status lands in the pipeline
// named by pipeline_id (which must match the sha and the ref), else in the
// newest pipeline of the sha, else in a new external pipeline; a pending
// status set to pending again is refused with 400 "Cannot transition
// status via :enqueue from :pending".
//
// # Caveats
//
// Failures are injected with Fail, FailNext, FailPath and FailAfter; a
// fault with After set handles the request (a note is stored) and then
// answers with the error, as when a response is lost; one with Hang
// answers nothing until the client gives up. Every method is safe
// for concurrent use.
package gitlabtest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token is the token a new Server accepts.
const Token = "glpat-gitlabtest-0123456789"

// DefaultBotUser is the username GET /user answers on a new Server.
const DefaultBotUser = "threatgate-bot"

// MR seeds a merge request.
type MR struct {
	Project      string // path with namespace, "shop/api"
	ProjectID    int64  // 0: the project's id, or a new one
	IID          int64
	Title        string
	Description  string
	Author       string // username
	SourceBranch string // default "feature"
	TargetBranch string // default "main"
	// SHA is the head commit; default a SHA derived from project and iid.
	SHA     string
	BaseSHA string // default a SHA derived from project and iid
	State   string // opened (default), closed, merged, locked
	Labels  []string
	// UpdatedAt defaults to the time AddMR is called.
	UpdatedAt time.Time
	// HeadPipelineID, when set, makes a pipeline for SHA on
	// HeadPipelineRef (default the source branch; a merge request
	// pipeline runs on refs/merge-requests/:iid/head) the MR's head
	// pipeline.
	HeadPipelineID  int64
	HeadPipelineRef string
	Diffs           []Diff
	// Overflow says GitLab left files out of the diffs (more than its
	// limit): changes_count reads "N+".
	Overflow bool
	// MergedBy and MergedAt, for a merged MR: who merged it (the API's
	// merge_user and merged_by) and when (merged_at); empty: not reported.
	MergedBy string
	MergedAt time.Time
	// Commits, newest first as GitLab lists them. When SHA is not among
	// them a commit for SHA by Author (Author@example.com) comes first.
	Commits []Commit
}

// Diff is one file of an MR's diff.
type Diff struct {
	OldPath, NewPath, Diff            string
	NewFile, RenamedFile, DeletedFile bool
	TooLarge                          bool
}

// Commit is one commit of an MR.
type Commit struct {
	ID             string
	AuthorEmail    string
	CommitterEmail string
	Title          string
	Body           string // the message after the title, such as Co-authored-by trailers
}

// Status is a commit status as the fake stores it.
type Status struct {
	ID          int64
	SHA         string
	Ref         string
	Name        string
	State       string
	Description string
	TargetURL   string
	PipelineID  int64
	Author      string
	CreatedAt   time.Time
}

// StatusCheckResponse is one answer to an external status check.
type StatusCheckResponse struct {
	Project string // path with namespace
	IID     int64
	SHA     string
	CheckID int64
	Status  string // passed, failed, pending
}

// Request is one request the fake received (the token is not kept).
type Request struct {
	Method   string
	Path     string // unescaped, "/api/v4/projects/shop/api/merge_requests/12"
	RawQuery string
	Body     string
	// Endpoint is the method and route template, "GET
	// /projects/:id/merge_requests/:iid/diffs" (see Endpoint).
	Endpoint string
}

// Fault makes requests fail.
type Fault struct {
	Method string // "" for any
	Path   string // a substring of the unescaped path; "" for any
	Times  int    // how many matching requests fail
	Status int
	Header http.Header // added to the answer (RateLimit-Reset, Retry-After)
	Body   string      // default {"message":"<status> <text>"}
	// After handles the request first (what it creates is stored), then
	// answers with the fault: a response lost on its way back.
	After bool
	// Hang answers nothing until the client gives up (its timeout or
	// context), to test timeouts without sleeping. Status is ignored.
	Hang bool
}

// Server is the fake GitLab. Set Token and BotUser before the first
// request if the defaults do not suit.
type Server struct {
	URL     string // base URL without /api/v4, for gitlab.Config.BaseURL
	Token   string // the PRIVATE-TOKEN it accepts
	BotUser string // the username GET /user answers
	// ReadAPIOnly makes Token a read_api token: every request but GET is
	// answered 403 insufficient_scope, as GitLab does (it is still
	// recorded in Requests).
	ReadAPIOnly bool

	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	now       func() time.Time
	users     map[string]*user // lower-case username → user
	nextID    int64            // ids of projects, MRs, notes and statuses
	nextPipe  int64            // ids of pipelines the fake creates
	projects  map[int64]*project
	byPath    map[string]int64
	pipelines map[int64]*pipeline
	responses []StatusCheckResponse
	requests  []Request
	faults    []*Fault
}

type project struct {
	id       int64
	path     string
	mrs      map[int64]*mrState
	commits  map[string]bool // known shas
	statuses []*Status
	checks   []check
}

type check struct {
	id   int64
	name string
}

type mrState struct {
	mr        MR
	id        int64
	createdAt time.Time
	notes     []*note
	versions  []version // oldest first
}

type note struct {
	id         int64
	body       string
	author     string
	authorID   int64
	createdAt  time.Time
	noCreated  bool   // served without created_at
	rawCreated string // served as created_at by GET .../notes/:note_id
	system     bool
}

type version struct {
	id         int64
	head, base string
	createdAt  time.Time
}

type user struct {
	id   int64
	name string
}

// Note seeds a note on an MR (AddMRNote).
type Note struct {
	Body   string
	Author string // username
	// AuthorID is the author's numeric id; 0: the id Author has now
	// (a new user when nobody has that username).
	AuthorID int64
	// CreatedAt defaults to now (SetNow's clock).
	CreatedAt time.Time
	// NoCreatedAt serves the note without created_at.
	NoCreatedAt bool
	// RawCreatedAt, when set, is served verbatim as created_at by GET
	// .../notes/:note_id (lists serve CreatedAt), to test a client with
	// an answer it cannot parse.
	RawCreatedAt string
	System       bool // a system note ("added 1 commit")
}

// BotUserID is the numeric id of Server.BotUser (GET /user), the author
// of every note created through the API.
const BotUserID = 1

type pipeline struct {
	id, projectID int64
	sha, ref      string
	external      bool
	// updatedAt moves when the pipeline is made and when a status lands
	// in it: what GET /projects/:id/pipelines?updated_after= filters on.
	updatedAt time.Time
}

// New starts a fake GitLab, closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := start(t)
	t.Cleanup(s.srv.Close)
	return s
}

// start starts a fake GitLab that reports misuse to t.
func start(t testing.TB) *Server {
	s := &Server{
		Token:     Token,
		BotUser:   DefaultBotUser,
		t:         t,
		now:       time.Now,
		nextID:    1000,
		nextPipe:  900_000,
		projects:  make(map[int64]*project),
		byPath:    make(map[string]int64),
		pipelines: make(map[int64]*pipeline),
		users:     make(map[string]*user),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server before the test ends.
func (s *Server) Close() { s.srv.Close() }

// Client returns an HTTP client for the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// pipelineID returns an id for a pipeline the fake creates, far from the
// ids tests seed.
func (s *Server) pipelineID() int64 {
	for {
		s.nextPipe++
		if s.pipelines[s.nextPipe] == nil {
			return s.nextPipe
		}
	}
}

// fakeSHA derives a stable 40-hex SHA from parts.
func fakeSHA(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// --- seeding ---------------------------------------------------------------

// AddMR adds a merge request (and its project when new).
func (s *Server) AddMR(m MR) {
	s.t.Helper()
	if m.Project == "" || m.IID <= 0 {
		s.t.Fatalf("gitlabtest: AddMR needs Project and a positive IID, got %q !%d", m.Project, m.IID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.ensureProject(m.Project, m.ProjectID)
	if err != nil {
		s.t.Fatalf("gitlabtest: AddMR: %v", err)
	}
	if _, dup := p.mrs[m.IID]; dup {
		s.t.Fatalf("gitlabtest: AddMR: %s!%d exists", m.Project, m.IID)
	}
	m.ProjectID = p.id
	m.Labels = slices.Clone(m.Labels)
	m.Diffs = slices.Clone(m.Diffs)
	m.Commits = slices.Clone(m.Commits)
	if m.State == "" {
		m.State = "opened"
	}
	if m.SourceBranch == "" {
		m.SourceBranch = "feature"
	}
	if m.TargetBranch == "" {
		m.TargetBranch = "main"
	}
	if m.SHA == "" {
		m.SHA = fakeSHA(m.Project, strconv.FormatInt(m.IID, 10), "head")
	}
	if m.BaseSHA == "" {
		m.BaseSHA = fakeSHA(m.Project, strconv.FormatInt(m.IID, 10), "base")
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = s.now().UTC()
	}
	if !slices.ContainsFunc(m.Commits, func(c Commit) bool { return c.ID == m.SHA }) {
		m.Commits = append([]Commit{s.defaultCommit(m, m.SHA)}, m.Commits...)
	}
	for _, c := range m.Commits {
		p.commits[c.ID] = true
	}
	p.commits[m.BaseSHA] = true
	if m.HeadPipelineID != 0 {
		ref := m.HeadPipelineRef
		if ref == "" {
			ref = m.SourceBranch
		}
		if _, ok := s.pipelines[m.HeadPipelineID]; ok {
			s.t.Fatalf("gitlabtest: AddMR: pipeline %d exists", m.HeadPipelineID)
		}
		s.pipelines[m.HeadPipelineID] = &pipeline{id: m.HeadPipelineID, projectID: p.id, sha: m.SHA, ref: ref, updatedAt: m.UpdatedAt}
		m.HeadPipelineRef = ref
	}
	st := &mrState{mr: m, id: s.id(), createdAt: m.UpdatedAt}
	st.versions = []version{{id: s.id(), head: m.SHA, base: m.BaseSHA, createdAt: m.UpdatedAt}}
	p.mrs[m.IID] = st
}

// SetNow makes now the fake's clock: the time of new notes, versions,
// statuses and MR updates.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetUser gives username the numeric id, creating the user or, for a
// recycled username, handing the name to another account. Notes already
// written keep the author id and username they were stored with.
func (s *Server) SetUser(username string, id int64) {
	s.t.Helper()
	if username == "" || id <= 0 {
		s.t.Fatalf("gitlabtest: SetUser needs a username and a positive id, got %q %d", username, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(username)] = &user{id: id, name: username}
}

// RenameUser renames the account that has username old to new, as GitLab
// does: its notes show the new username; old is free for someone else.
func (s *Server) RenameUser(old, new string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(old)]
	if u == nil {
		s.t.Fatalf("gitlabtest: RenameUser: no user %q", old)
	}
	delete(s.users, strings.ToLower(old))
	u.name = new
	s.users[strings.ToLower(new)] = u
	for _, p := range s.projects {
		for _, st := range p.mrs {
			for _, n := range st.notes {
				if n.authorID == u.id {
					n.author = new
				}
			}
		}
	}
}

// UserID returns the id of the user who has username now.
func (s *Server) UserID(username string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(username)]
	if u == nil {
		return 0, false
	}
	return u.id, true
}

// userID returns the id of username, creating the user when new; callers
// hold s.mu.
func (s *Server) userID(username string) int64 {
	if username == s.BotUser {
		return BotUserID
	}
	k := strings.ToLower(username)
	if u := s.users[k]; u != nil {
		return u.id
	}
	u := &user{id: s.id(), name: username}
	s.users[k] = u
	return u.id
}

func (s *Server) defaultCommit(m MR, sha string) Commit {
	e := m.Author + "@example.com"
	if m.Author == "" {
		e = "dev@example.com"
	}
	return Commit{ID: sha, AuthorEmail: e, CommitterEmail: e, Title: "commit " + sha[:min(7, len(sha))]}
}

// ensureProject finds or creates the project path (with id when non-zero).
func (s *Server) ensureProject(path string, id int64) (*project, error) {
	if pid, ok := s.byPath[path]; ok {
		if id != 0 && id != pid {
			return nil, fmt.Errorf("project %s has id %d, not %d", path, pid, id)
		}
		return s.projects[pid], nil
	}
	if id == 0 {
		id = s.id()
	} else if _, taken := s.projects[id]; taken {
		return nil, fmt.Errorf("project id %d belongs to %s", id, s.projects[id].path)
	}
	p := &project{id: id, path: path, mrs: make(map[int64]*mrState), commits: make(map[string]bool)}
	s.projects[id] = p
	s.byPath[path] = id
	if id > s.nextID && id < 1_000_000 {
		s.nextID = id
	}
	return p, nil
}

// lookup finds a project by path or numeric id.
func (s *Server) lookup(ref string) *project {
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return s.projects[n]
	}
	if id, ok := s.byPath[ref]; ok {
		return s.projects[id]
	}
	return nil
}

func (s *Server) mustMR(projectRef string, iid int64) (*project, *mrState) {
	s.t.Helper()
	p := s.lookup(projectRef)
	if p == nil {
		s.t.Fatalf("gitlabtest: no project %q", projectRef)
	}
	st := p.mrs[iid]
	if st == nil {
		s.t.Fatalf("gitlabtest: no MR %s!%d", projectRef, iid)
	}
	return p, st
}

// PushCommit makes sha the MR's head, as a push by the MR's author would,
// and replaces its diffs when diffs are given. The head pipeline stays on
// the old commit until SetHeadPipeline.
func (s *Server) PushCommit(project string, iid int64, sha string, diffs ...Diff) {
	s.t.Helper()
	s.mu.Lock()
	_, st := s.mustMR(project, iid)
	c := s.defaultCommit(st.mr, sha)
	s.mu.Unlock()
	s.Push(project, iid, c, diffs...)
}

// Push makes c the MR's head commit, and replaces its diffs when diffs are
// given.
func (s *Server) Push(project string, iid int64, c Commit, diffs ...Diff) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, st := s.mustMR(project, iid)
	if c.ID == "" {
		s.t.Fatalf("gitlabtest: Push needs a commit id")
	}
	st.mr.SHA = c.ID
	st.mr.Commits = append([]Commit{c}, st.mr.Commits...)
	p.commits[c.ID] = true
	if len(diffs) > 0 {
		st.mr.Diffs = slices.Clone(diffs)
	}
	st.mr.UpdatedAt = s.now().UTC()
	st.versions = append(st.versions, version{id: s.id(), head: c.ID, base: st.mr.BaseSHA, createdAt: st.mr.UpdatedAt})
}

// SetDiffs replaces the MR's diffs and says whether GitLab left files
// out (overflow), leaving its head and updated_at as they are: GitLab
// finishing the diff of a new MR, which it prepares after the MR exists.
func (s *Server) SetDiffs(project string, iid int64, overflow bool, diffs ...Diff) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st := s.mustMR(project, iid)
	st.mr.Diffs = slices.Clone(diffs)
	st.mr.Overflow = overflow
}

// SetHeadPipeline makes pipeline id, on the MR's current head and ref
// ("" for the source branch), its head pipeline.
func (s *Server) SetHeadPipeline(project string, iid, id int64, ref string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, st := s.mustMR(project, iid)
	if ref == "" {
		ref = st.mr.SourceBranch
	}
	s.pipelines[id] = &pipeline{id: id, projectID: p.id, sha: st.mr.SHA, ref: ref, updatedAt: s.now().UTC()}
	st.mr.HeadPipelineID = id
	st.mr.HeadPipelineRef = ref
}

// SetState sets the MR's state: opened, closed, merged or locked.
func (s *Server) SetState(project string, iid int64, state string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st := s.mustMR(project, iid)
	st.mr.State = state
	st.mr.UpdatedAt = s.now().UTC()
}

// SetMerged merges the MR as user by, now: the API then reports who
// (merge_user, merged_by) and when (merged_at), as GitLab does.
func (s *Server) SetMerged(project string, iid int64, by string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st := s.mustMR(project, iid)
	st.mr.State = "merged"
	st.mr.UpdatedAt = s.now().UTC()
	st.mr.MergedBy, st.mr.MergedAt = by, st.mr.UpdatedAt
}

// SetLabels replaces the MR's labels.
func (s *Server) SetLabels(project string, iid int64, labels ...string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st := s.mustMR(project, iid)
	st.mr.Labels = slices.Clone(labels)
	st.mr.UpdatedAt = s.now().UTC()
}

// AddNote adds a note by author to the MR, written now.
func (s *Server) AddNote(project string, iid int64, body, author string) {
	s.t.Helper()
	s.AddMRNote(project, iid, Note{Body: body, Author: author})
}

// AddMRNote adds a note to the MR as n describes it and returns its id.
func (s *Server) AddMRNote(project string, iid int64, n Note) int64 {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, st := s.mustMR(project, iid)
	at := n.CreatedAt
	if at.IsZero() {
		at = s.now()
	}
	id := n.AuthorID
	if id == 0 && n.Author != "" {
		id = s.userID(n.Author)
	}
	nt := &note{id: s.id(), body: n.Body, author: n.Author, authorID: id, createdAt: at.UTC(),
		noCreated: n.NoCreatedAt, rawCreated: n.RawCreatedAt, system: n.System}
	st.notes = append(st.notes, nt)
	return nt.id
}

// SetStatusAs records a commit status set by username (a forged one when
// that is not BotUser), in the newest pipeline of sha or a new external
// pipeline.
func (s *Server) SetStatusAs(project, sha, name, state, username string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil {
		s.t.Fatalf("gitlabtest: no project %q", project)
	}
	p.commits[sha] = true
	pl := s.newestPipeline(p, sha, "")
	if pl == nil {
		pl = &pipeline{id: s.pipelineID(), projectID: p.id, sha: sha, ref: s.branchFor(p, sha), external: true}
		s.pipelines[pl.id] = pl
	}
	pl.updatedAt = s.now().UTC()
	p.statuses = append(p.statuses, &Status{
		ID: s.id(), SHA: sha, Ref: pl.ref, Name: name, State: state,
		PipelineID: pl.id, Author: username, CreatedAt: s.now().UTC(),
	})
}

// AddStatusCheck adds an external status check to the project.
func (s *Server) AddStatusCheck(project string, id int64, name string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil {
		var err error
		if p, err = s.ensureProject(project, 0); err != nil {
			s.t.Fatalf("gitlabtest: AddStatusCheck: %v", err)
		}
	}
	p.checks = append(p.checks, check{id: id, name: name})
}

// --- failure injection -----------------------------------------------------

// Fail adds a fault; faults are matched in the order they were added.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Header = f.Header.Clone()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault not used up yet: GitLab is well again.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// FailNext makes the next n requests fail with status and header.
func (s *Server) FailNext(n, status int, header http.Header) {
	s.Fail(Fault{Times: n, Status: status, Header: header})
}

// FailPath makes the next n requests whose path contains substr fail with
// status.
func (s *Server) FailPath(substr string, n, status int) {
	s.Fail(Fault{Path: substr, Times: n, Status: status})
}

// FailAfter makes the next n requests with method whose path contains
// substr take effect, then answer status: the response is lost.
func (s *Server) FailAfter(method, substr string, n, status int) {
	s.Fail(Fault{Method: method, Path: substr, Times: n, Status: status, After: true})
}

func (s *Server) takeFault(method, path string) *Fault {
	for i, f := range s.faults {
		if f.Times <= 0 || (f.Method != "" && f.Method != method) || !strings.Contains(path, f.Path) {
			continue
		}
		f.Times--
		out := *f
		if f.Times == 0 {
			s.faults = slices.Delete(s.faults, i, i+1)
		}
		return &out
	}
	return nil
}

// --- inspection ------------------------------------------------------------

// Requests returns every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Calls counts the requests whose unescaped path contains substr.
func (s *Server) Calls(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if strings.Contains(r.Path, substr) {
			n++
		}
	}
	return n
}

// CallsByEndpoint counts the requests received by endpoint (method and
// route template, Request.Endpoint).
func (s *Server) CallsByEndpoint() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.requests {
		out[r.Endpoint]++
	}
	return out
}

// Endpoint returns the method and route template of a request path as
// GitLab's API documentation writes it: "GET
// /projects/:id/merge_requests/:iid". escaped is the path as sent (a
// project path is one segment, its slashes escaped).
func Endpoint(method, escaped string) string {
	rest, ok := strings.CutPrefix(escaped, "/api/v4")
	if !ok {
		return method + " " + escaped
	}
	params := map[string]string{"projects": ":id", "merge_requests": ":iid", "notes": ":note_id",
		"commits": ":sha", "statuses": ":sha", "pipelines": ":pipeline_id", "users": ":user_id"}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	word := ""
	for i, sg := range segs {
		if p := params[word]; p != "" {
			segs[i], word = p, ""
			continue
		}
		word = sg
	}
	return method + " /" + strings.Join(segs, "/")
}

// Statuses returns the commit statuses on sha in project, oldest first.
func (s *Server) Statuses(project, sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil {
		return nil
	}
	var out []Status
	for _, st := range p.statuses {
		if st.SHA == sha {
			out = append(out, *st)
		}
	}
	return out
}

// Notes returns the bodies of the MR's notes, oldest first.
func (s *Server) Notes(project string, iid int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil || p.mrs[iid] == nil {
		return nil
	}
	var out []string
	for _, n := range p.mrs[iid].notes {
		out = append(out, n.body)
	}
	return out
}

// Labels returns the MR's labels.
func (s *Server) Labels(project string, iid int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil || p.mrs[iid] == nil {
		return nil
	}
	return slices.Clone(p.mrs[iid].mr.Labels)
}

// MR returns the MR as the fake holds it now.
func (s *Server) MR(project string, iid int64) (MR, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(project)
	if p == nil || p.mrs[iid] == nil {
		return MR{}, false
	}
	m := p.mrs[iid].mr
	m.Labels = slices.Clone(m.Labels)
	m.Diffs = slices.Clone(m.Diffs)
	m.Commits = slices.Clone(m.Commits)
	return m, true
}

// StatusCheckResponses returns the answers to external status checks, in
// order.
func (s *Server) StatusCheckResponses() []StatusCheckResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// --- HTTP ------------------------------------------------------------------

// apiError answers GitLab's error shape.
type apiError struct {
	status int
	body   any
}

func notFound(what string) *apiError {
	return &apiError{http.StatusNotFound, map[string]string{"message": "404 " + what + " Not Found"}}
}

func badRequest(msg any) *apiError {
	return &apiError{http.StatusBadRequest, map[string]any{"message": msg}}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: string(body),
		Endpoint: Endpoint(r.Method, r.URL.EscapedPath())})
	f := s.takeFault(r.Method, r.URL.Path)
	token, bot, readOnly := s.Token, s.BotUser, s.ReadAPIOnly
	// GitLab's clock, as its answers' Date header says it.
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
	s.mu.Unlock()

	if f != nil && f.Hang {
		<-r.Context().Done()
		return
	}
	if f != nil && !f.After {
		writeFault(w, f)
		return
	}
	if r.Header.Get("PRIVATE-TOKEN") != token {
		writeJSON(w, http.StatusUnauthorized, nil, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if readOnly && r.Method != http.MethodGet {
		writeJSON(w, http.StatusForbidden, nil, map[string]string{"error": "insufficient_scope",
			"error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"})
		return
	}
	s.mu.Lock()
	status, hdr, v, aerr := s.route(r, body, bot)
	s.mu.Unlock()
	if f != nil {
		writeFault(w, f)
		return
	}
	if aerr != nil {
		writeJSON(w, aerr.status, nil, aerr.body)
		return
	}
	writeJSON(w, status, hdr, v)
}

func writeFault(w http.ResponseWriter, f *Fault) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := f.Body
	if body == "" {
		b, _ := json.Marshal(map[string]string{"message": fmt.Sprintf("%d %s", f.Status, http.StatusText(f.Status))})
		body = string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	io.WriteString(w, body)
}

func writeJSON(w http.ResponseWriter, status int, hdr http.Header, v any) {
	for k, vs := range hdr {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		json.NewEncoder(w).Encode(v)
	}
}

// route answers r; callers hold s.mu.
func (s *Server) route(r *http.Request, body []byte, bot string) (int, http.Header, any, *apiError) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/")
	if !ok {
		return 0, nil, nil, &apiError{http.StatusNotFound, map[string]string{"error": "404 Not Found"}}
	}
	raw := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	segs := make([]string, len(raw))
	for i, sg := range raw {
		u, err := url.PathUnescape(sg)
		if err != nil {
			return 0, nil, nil, badRequest("malformed path")
		}
		segs[i] = u
	}
	m := r.Method
	if len(segs) == 1 && segs[0] == "user" && m == http.MethodGet {
		return 200, nil, map[string]any{"id": BotUserID, "username": bot, "name": "threatgate", "state": "active"}, nil
	}
	if len(segs) == 1 && segs[0] == "users" && m == http.MethodGet {
		return s.listUsers(r)
	}
	if len(segs) < 2 || segs[0] != "projects" {
		return 0, nil, nil, &apiError{http.StatusNotFound, map[string]string{"error": "404 Not Found"}}
	}
	p := s.lookup(segs[1])
	if p == nil {
		return 0, nil, nil, notFound("Project")
	}
	segs = segs[2:]
	switch {
	case len(segs) == 1 && segs[0] == "merge_requests" && m == http.MethodGet:
		return s.listMRs(r, p)
	case len(segs) == 1 && segs[0] == "pipelines" && m == http.MethodGet:
		return s.listPipelines(r, p)
	case len(segs) == 1 && segs[0] == "external_status_checks" && m == http.MethodGet:
		return s.listChecks(r, p)
	case len(segs) == 4 && segs[0] == "repository" && segs[1] == "commits" && segs[3] == "statuses" && m == http.MethodGet:
		return s.listStatuses(r, p, segs[2])
	case len(segs) == 2 && segs[0] == "statuses" && m == http.MethodPost:
		return s.setStatus(p, segs[1], body, bot)
	case len(segs) >= 2 && segs[0] == "merge_requests":
		iid, err := strconv.ParseInt(segs[1], 10, 64)
		if err != nil {
			return 0, nil, nil, notFound("Merge Request")
		}
		st := p.mrs[iid]
		if st == nil {
			return 0, nil, nil, notFound("Merge Request")
		}
		sub := ""
		if len(segs) == 3 {
			sub = segs[2]
		} else if len(segs) == 4 && segs[2] == "notes" && m == http.MethodGet {
			return s.getNote(st, segs[3])
		} else if len(segs) > 3 {
			break
		}
		switch {
		case sub == "" && m == http.MethodGet:
			return 200, nil, s.mrJSON(p, st), nil
		case sub == "" && m == http.MethodPut:
			return s.updateMR(p, st, body)
		case sub == "diffs" && m == http.MethodGet:
			return s.listDiffs(r, st)
		case sub == "commits" && m == http.MethodGet:
			return s.listCommits(r, st)
		case sub == "versions" && m == http.MethodGet:
			return s.listVersions(r, st)
		case sub == "notes" && m == http.MethodGet:
			return s.listNotes(r, st)
		case sub == "notes" && m == http.MethodPost:
			return s.createNote(st, body, bot)
		case sub == "status_checks" && m == http.MethodGet:
			return s.mrChecks(r, p, st)
		case sub == "status_check_responses" && m == http.MethodPost:
			return s.checkResponse(p, st, body)
		}
	}
	return 0, nil, nil, &apiError{http.StatusNotFound, map[string]string{"error": "404 Not Found"}}
}

// paginate cuts items to the page r asks for and sets GitLab's headers.
func paginate[T any](s *Server, r *http.Request, items []T) ([]T, http.Header) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per < 1 {
		per = 20
	}
	per = min(per, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	total := len(items)
	pages := max(1, int(math.Ceil(float64(total)/float64(per))))
	start := min((page-1)*per, total)
	end := min(start+per, total)

	h := http.Header{}
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	link := func(n int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf("<%s%s?%s>; rel=\"%s\"", s.URL, r.URL.EscapedPath(), q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(min(page-1, pages)))
		links = append(links, link(min(page-1, pages), "prev"))
	}
	if page < pages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(1, "first"), link(pages, "last"))
	h.Set("Link", strings.Join(links, ", "))
	return items[start:end], h
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) mrJSON(p *project, st *mrState) map[string]any {
	m := st.mr
	labels := m.Labels
	if labels == nil {
		labels = []string{}
	}
	var head any
	if pl := s.pipelines[m.HeadPipelineID]; m.HeadPipelineID != 0 && pl != nil {
		head = map[string]any{"id": pl.id, "iid": pl.id, "project_id": p.id, "sha": pl.sha, "ref": pl.ref, "status": "running", "source": "push"}
	}
	ref := fmt.Sprintf("!%d", m.IID)
	author := int64(100)
	if m.Author != "" {
		author = s.userID(m.Author)
	}
	out := map[string]any{
		"id": st.id, "iid": m.IID, "project_id": p.id,
		"source_project_id": p.id, "target_project_id": p.id,
		"title": m.Title, "description": m.Description, "state": m.State,
		"source_branch": m.SourceBranch, "target_branch": m.TargetBranch,
		"labels": labels,
		"author": map[string]any{"id": author, "username": m.Author, "name": m.Author, "state": "active"},
		"sha":    m.SHA, "draft": false,
		"web_url":    fmt.Sprintf("%s/%s/-/merge_requests/%d", s.URL, p.path, m.IID),
		"created_at": ts(st.createdAt), "updated_at": ts(m.UpdatedAt),
		"references":    map[string]string{"short": ref, "relative": ref, "full": p.path + ref},
		"head_pipeline": head,
		"diff_refs":     map[string]string{"base_sha": m.BaseSHA, "head_sha": m.SHA, "start_sha": m.BaseSHA},
		"changes_count": strconv.Itoa(len(m.Diffs)),
	}
	if m.Overflow {
		out["changes_count"] = strconv.Itoa(len(m.Diffs)) + "+"
	}
	if m.MergedBy != "" {
		u := map[string]any{"id": s.userID(m.MergedBy), "username": m.MergedBy, "name": m.MergedBy, "state": "active"}
		out["merge_user"], out["merged_by"] = u, u
	}
	if !m.MergedAt.IsZero() {
		out["merged_at"] = ts(m.MergedAt)
	}
	return out
}

// listMRs answers GET /projects/:id/merge_requests: state, updated_after
// (inclusive, as GitLab's issuable finder: updated_at >= it), order_by
// (created_at, the default, or updated_at; ties by id) and sort (desc, the
// default, or asc). Like GitLab's list, it carries no head_pipeline and
// no diff_refs.
func (s *Server) listMRs(r *http.Request, p *project) (int, http.Header, any, *apiError) {
	q := r.URL.Query()
	state := q.Get("state")
	var after time.Time
	if v := q.Get("updated_after"); v != "" {
		var err error
		if after, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, nil, nil, badRequest("updated_after is invalid")
		}
	}
	sts := make([]*mrState, 0, len(p.mrs))
	for _, st := range p.mrs {
		if state != "" && state != "all" && st.mr.State != state {
			continue
		}
		if !after.IsZero() && st.mr.UpdatedAt.Before(after) {
			continue
		}
		sts = append(sts, st)
	}
	byUpdated := q.Get("order_by") == "updated_at"
	asc := q.Get("sort") == "asc"
	sort.Slice(sts, func(i, j int) bool {
		a, b := sts[i], sts[j]
		ta, tb := a.createdAt, b.createdAt
		if byUpdated {
			ta, tb = a.mr.UpdatedAt, b.mr.UpdatedAt
		}
		if !ta.Equal(tb) {
			return ta.Before(tb) == asc
		}
		return (a.id < b.id) == asc
	})
	page, h := paginate(s, r, sts)
	out := make([]map[string]any, 0, len(page))
	for _, st := range page {
		m := s.mrJSON(p, st)
		delete(m, "head_pipeline")
		delete(m, "diff_refs")
		out = append(out, m)
	}
	return 200, h, out, nil
}

// listPipelines answers GET /projects/:id/pipelines: updated_after
// (exclusive, as GitLab's pipelines finder: updated_at > it), order_by
// (id, the default, or updated_at) and sort (desc, the default, or asc).
func (s *Server) listPipelines(r *http.Request, p *project) (int, http.Header, any, *apiError) {
	q := r.URL.Query()
	var after time.Time
	if v := q.Get("updated_after"); v != "" {
		var err error
		if after, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, nil, nil, badRequest("updated_after is invalid")
		}
	}
	var pls []*pipeline
	for _, pl := range s.pipelines {
		if pl.projectID != p.id || (!after.IsZero() && !pl.updatedAt.After(after)) {
			continue
		}
		pls = append(pls, pl)
	}
	byUpdated := q.Get("order_by") == "updated_at"
	asc := q.Get("sort") == "asc"
	sort.Slice(pls, func(i, j int) bool {
		a, b := pls[i], pls[j]
		if byUpdated && !a.updatedAt.Equal(b.updatedAt) {
			return a.updatedAt.Before(b.updatedAt) == asc
		}
		return (a.id < b.id) == asc
	})
	page, h := paginate(s, r, pls)
	out := make([]map[string]any, 0, len(page))
	for _, pl := range page {
		source := "push"
		if pl.external {
			source = "external"
		}
		out = append(out, map[string]any{"id": pl.id, "iid": pl.id, "project_id": p.id, "sha": pl.sha, "ref": pl.ref,
			"status": "running", "source": source, "created_at": ts(pl.updatedAt), "updated_at": ts(pl.updatedAt)})
	}
	return 200, h, out, nil
}

// labelList reads labels sent as "a,b" or ["a","b"].
func labelList(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		var out []string
		for l := range strings.SplitSeq(s, ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	var ls []string
	json.Unmarshal(raw, &ls)
	return ls
}

// scope returns the scope of a scoped label ("security-tier" of
// "security-tier::high"), "" for an unscoped one.
func scope(l string) string {
	if i := strings.LastIndex(l, "::"); i > 0 {
		return l[:i]
	}
	return ""
}

func (s *Server) updateMR(p *project, st *mrState, body []byte) (int, http.Header, any, *apiError) {
	var req struct {
		Labels       json.RawMessage `json:"labels"`
		AddLabels    json.RawMessage `json:"add_labels"`
		RemoveLabels json.RawMessage `json:"remove_labels"`
		StateEvent   string          `json:"state_event"`
		Title        *string         `json:"title"`
		Description  *string         `json:"description"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, nil, badRequest("malformed JSON")
	}
	m := &st.mr
	if req.Labels != nil && string(req.Labels) != "null" {
		m.Labels = labelList(req.Labels)
	}
	for _, l := range labelList(req.AddLabels) {
		if sc := scope(l); sc != "" {
			// GitLab keeps one label per scope.
			m.Labels = slices.DeleteFunc(m.Labels, func(x string) bool { return scope(x) == sc && x != l })
		}
		if !slices.Contains(m.Labels, l) {
			m.Labels = append(m.Labels, l)
		}
	}
	for _, l := range labelList(req.RemoveLabels) {
		m.Labels = slices.DeleteFunc(m.Labels, func(x string) bool { return x == l })
	}
	switch req.StateEvent {
	case "close":
		m.State = "closed"
	case "reopen":
		m.State = "opened"
	}
	if req.Title != nil {
		m.Title = *req.Title
	}
	if req.Description != nil {
		m.Description = *req.Description
	}
	m.UpdatedAt = s.now().UTC()
	return 200, nil, s.mrJSON(p, st), nil
}

func (s *Server) listDiffs(r *http.Request, st *mrState) (int, http.Header, any, *apiError) {
	out := make([]map[string]any, 0, len(st.mr.Diffs))
	for _, d := range st.mr.Diffs {
		diff := d.Diff
		if d.TooLarge {
			diff = ""
		}
		out = append(out, map[string]any{
			"old_path": d.OldPath, "new_path": d.NewPath, "a_mode": "100644", "b_mode": "100644",
			"diff": diff, "new_file": d.NewFile, "renamed_file": d.RenamedFile, "deleted_file": d.DeletedFile,
			"generated_file": false, "collapsed": false, "too_large": d.TooLarge,
		})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) listCommits(r *http.Request, st *mrState) (int, http.Header, any, *apiError) {
	out := make([]map[string]any, 0, len(st.mr.Commits))
	at := ts(st.mr.UpdatedAt)
	for _, c := range st.mr.Commits {
		title := c.Title
		if title == "" {
			title = "commit " + c.ID[:min(7, len(c.ID))]
		}
		name := func(e string) string { n, _, _ := strings.Cut(e, "@"); return n }
		out = append(out, map[string]any{
			"id": c.ID, "short_id": c.ID[:min(8, len(c.ID))], "title": title, "message": strings.TrimRight(title+"\n\n"+c.Body, "\n") + "\n",
			"author_name": name(c.AuthorEmail), "author_email": c.AuthorEmail, "authored_date": at,
			"committer_name": name(c.CommitterEmail), "committer_email": c.CommitterEmail, "committed_date": at,
			"created_at": at, "parent_ids": []string{},
		})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) noteJSON(st *mrState, n *note) map[string]any {
	out := map[string]any{
		"id": n.id, "body": n.body, "author": map[string]any{"id": n.authorID, "username": n.author, "name": n.author, "state": "active"},
		"created_at": ts(n.createdAt), "updated_at": ts(n.createdAt), "system": n.system,
		"noteable_id": st.id, "noteable_iid": st.mr.IID, "noteable_type": "MergeRequest",
	}
	if n.noCreated {
		delete(out, "created_at")
		delete(out, "updated_at")
	}
	return out
}

func (s *Server) getNote(st *mrState, ref string) (int, http.Header, any, *apiError) {
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return 0, nil, nil, notFound("Note")
	}
	for _, n := range st.notes {
		if n.id != id {
			continue
		}
		out := s.noteJSON(st, n)
		if n.rawCreated != "" {
			out["created_at"] = n.rawCreated
		}
		return 200, nil, out, nil
	}
	return 0, nil, nil, notFound("Note")
}

func (s *Server) listVersions(r *http.Request, st *mrState) (int, http.Header, any, *apiError) {
	out := make([]map[string]any, 0, len(st.versions))
	for i := len(st.versions) - 1; i >= 0; i-- {
		v := st.versions[i]
		out = append(out, map[string]any{
			"id": v.id, "head_commit_sha": v.head, "base_commit_sha": v.base, "start_commit_sha": v.base,
			"created_at": ts(v.createdAt), "merge_request_id": st.id, "state": "collected", "real_size": "1",
		})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) listUsers(r *http.Request) (int, http.Header, any, *apiError) {
	want := strings.ToLower(r.URL.Query().Get("username"))
	var names []string
	for k := range s.users {
		if want == "" || k == want {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make([]map[string]any, 0, len(names))
	for _, k := range names {
		u := s.users[k]
		out = append(out, map[string]any{"id": u.id, "username": u.name, "name": u.name, "state": "active",
			"web_url": s.URL + "/" + u.name})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) listNotes(r *http.Request, st *mrState) (int, http.Header, any, *apiError) {
	notes := slices.Clone(st.notes)
	desc := r.URL.Query().Get("sort") != "asc"
	// created_at and updated_at are the same here; ids break ties.
	sort.SliceStable(notes, func(i, j int) bool {
		a, b := notes[i], notes[j]
		if !a.createdAt.Equal(b.createdAt) {
			return a.createdAt.Before(b.createdAt) != desc
		}
		return (a.id < b.id) != desc
	})
	out := make([]map[string]any, 0, len(notes))
	for _, n := range notes {
		out = append(out, s.noteJSON(st, n))
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) createNote(st *mrState, body []byte, bot string) (int, http.Header, any, *apiError) {
	var req struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Body) == "" {
		return 0, nil, nil, badRequest(map[string][]string{"note": {"can't be blank"}})
	}
	n := &note{id: s.id(), body: req.Body, author: bot, authorID: BotUserID, createdAt: s.now().UTC()}
	st.notes = append(st.notes, n)
	return http.StatusCreated, nil, s.noteJSON(st, n), nil
}

func (s *Server) statusJSON(st *Status) map[string]any {
	var target any
	if st.TargetURL != "" {
		target = st.TargetURL
	}
	return map[string]any{
		"id": st.ID, "sha": st.SHA, "ref": st.Ref, "status": st.State, "name": st.Name,
		"description": st.Description, "target_url": target, "pipeline_id": st.PipelineID,
		"author":     map[string]any{"id": 1, "username": st.Author, "name": st.Author},
		"created_at": ts(st.CreatedAt), "allow_failure": false,
	}
}

func (s *Server) listStatuses(r *http.Request, p *project, sha string) (int, http.Header, any, *apiError) {
	if !p.commits[sha] {
		return 0, nil, nil, notFound("Commit")
	}
	q := r.URL.Query()
	all := q.Get("all") == "true"
	// latest: the newest status per pipeline and name.
	newest := map[[2]string]int64{}
	for _, st := range p.statuses {
		k := [2]string{strconv.FormatInt(st.PipelineID, 10), st.Name}
		if st.SHA == sha && st.ID > newest[k] {
			newest[k] = st.ID
		}
	}
	out := []map[string]any{}
	for _, st := range p.statuses {
		if st.SHA != sha {
			continue
		}
		if !all && newest[[2]string{strconv.FormatInt(st.PipelineID, 10), st.Name}] != st.ID {
			continue
		}
		if v := q.Get("ref"); v != "" && st.Ref != v {
			continue
		}
		if v := q.Get("name"); v != "" && st.Name != v {
			continue
		}
		out = append(out, s.statusJSON(st))
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

// newestPipeline returns the newest pipeline of sha (on ref, when set).
func (s *Server) newestPipeline(p *project, sha, ref string) *pipeline {
	var best *pipeline
	for _, pl := range s.pipelines {
		if pl.projectID == p.id && pl.sha == sha && (ref == "" || pl.ref == ref) && (best == nil || pl.id > best.id) {
			best = pl
		}
	}
	return best
}

// branchFor returns a branch that contains sha: the source branch of an
// MR that has it.
func (s *Server) branchFor(p *project, sha string) string {
	for _, iid := range slices.Sorted(maps.Keys(p.mrs)) {
		st := p.mrs[iid]
		if slices.ContainsFunc(st.mr.Commits, func(c Commit) bool { return c.ID == sha }) {
			return st.mr.SourceBranch
		}
	}
	return ""
}

func (s *Server) setStatus(p *project, sha string, body []byte, bot string) (int, http.Header, any, *apiError) {
	var req struct {
		State       string   `json:"state"`
		Ref         *string  `json:"ref"`
		Name        *string  `json:"name"`
		Context     *string  `json:"context"`
		TargetURL   *string  `json:"target_url"`
		Description *string  `json:"description"`
		Coverage    *float64 `json:"coverage"`
		PipelineID  *int64   `json:"pipeline_id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, nil, badRequest("malformed JSON")
	}
	if !p.commits[sha] {
		return 0, nil, nil, notFound("Commit")
	}
	if req.State == "" {
		return 0, nil, nil, badRequest("State is required")
	}
	if !slices.Contains([]string{"pending", "running", "success", "failed", "canceled", "skipped"}, req.State) {
		return 0, nil, nil, &apiError{http.StatusBadRequest, map[string]string{"error": "state does not have a valid value"}}
	}
	if req.Description != nil && len([]rune(*req.Description)) > 255 {
		return 0, nil, nil, badRequest(map[string][]string{"description": {"is too long (maximum is 255 characters)"}})
	}
	name := "default"
	if req.Name != nil && *req.Name != "" {
		name = *req.Name
	} else if req.Context != nil && *req.Context != "" {
		name = *req.Context
	}
	refParam := ""
	if req.Ref != nil {
		refParam = *req.Ref
	}
	// GitLab: the first pipeline of sha (on ref, with pipeline_id).
	var pl *pipeline
	if req.PipelineID != nil {
		if cand := s.pipelines[*req.PipelineID]; cand != nil && cand.projectID == p.id && cand.sha == sha && (refParam == "" || cand.ref == refParam) {
			pl = cand
		} else {
			return 0, nil, nil, notFound("Pipeline for pipeline_id, sha and ref")
		}
	} else {
		pl = s.newestPipeline(p, sha, refParam)
	}
	ref := refParam
	if ref == "" && pl != nil {
		ref = pl.ref
	}
	if ref == "" {
		ref = s.branchFor(p, sha)
	}
	if ref == "" {
		return 0, nil, nil, notFound("References for commit")
	}
	if pl == nil {
		pl = &pipeline{id: s.pipelineID(), projectID: p.id, sha: sha, ref: ref, external: true}
		s.pipelines[pl.id] = pl
	}
	// An existing running or pending status of ours with that name is
	// moved along; a transition to the state it has is refused.
	var cur *Status
	for _, st := range p.statuses {
		if st.PipelineID == pl.id && st.Name == name && st.Ref == ref && st.Author == bot && (st.State == "pending" || st.State == "running") {
			cur = st
		}
	}
	if cur != nil {
		switch {
		case req.State == "pending":
			return 0, nil, nil, badRequest(fmt.Sprintf("Cannot transition status via :enqueue from :%s (Reason(s): Status cannot transition via \"enqueue\")", cur.State))
		case req.State == "running" && cur.State == "running":
			return 0, nil, nil, badRequest("Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")")
		}
	} else {
		cur = &Status{ID: s.id(), SHA: sha, Ref: ref, Name: name, PipelineID: pl.id, Author: bot, CreatedAt: s.now().UTC()}
		p.statuses = append(p.statuses, cur)
	}
	cur.State = req.State
	pl.updatedAt = s.now().UTC()
	if req.Description != nil {
		cur.Description = *req.Description
	}
	if req.TargetURL != nil {
		cur.TargetURL = *req.TargetURL
	}
	return http.StatusCreated, nil, s.statusJSON(cur), nil
}

func (s *Server) listChecks(r *http.Request, p *project) (int, http.Header, any, *apiError) {
	out := make([]map[string]any, 0, len(p.checks))
	for _, c := range p.checks {
		out = append(out, map[string]any{
			"id": c.id, "name": c.name, "project_id": p.id, "external_url": "https://threatgate.example.com/webhooks/gitlab/status-check",
			"hmac": true, "protected_branches": []any{},
		})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) mrChecks(r *http.Request, p *project, st *mrState) (int, http.Header, any, *apiError) {
	out := make([]map[string]any, 0, len(p.checks))
	for _, c := range p.checks {
		status := "pending"
		for _, resp := range s.responses {
			if resp.Project == p.path && resp.IID == st.mr.IID && resp.CheckID == c.id && resp.SHA == st.mr.SHA {
				status = resp.Status
			}
		}
		out = append(out, map[string]any{"id": c.id, "name": c.name, "external_url": "https://threatgate.example.com/webhooks/gitlab/status-check", "status": status})
	}
	page, h := paginate(s, r, out)
	return 200, h, page, nil
}

func (s *Server) checkResponse(p *project, st *mrState, body []byte) (int, http.Header, any, *apiError) {
	var req struct {
		SHA     string `json:"sha"`
		CheckID int64  `json:"external_status_check_id"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, nil, badRequest("malformed JSON")
	}
	if req.SHA == "" || req.CheckID == 0 {
		return 0, nil, nil, &apiError{http.StatusBadRequest, map[string]string{"error": "sha, external_status_check_id are missing"}}
	}
	if !slices.Contains([]string{"passed", "failed", "pending"}, req.Status) {
		return 0, nil, nil, &apiError{http.StatusBadRequest, map[string]string{"error": "status does not have a valid value"}}
	}
	if req.SHA != st.mr.SHA {
		return 0, nil, nil, &apiError{http.StatusConflict, map[string]string{"message": "SHA does not match HEAD of source branch: " + req.SHA}}
	}
	i := slices.IndexFunc(p.checks, func(c check) bool { return c.id == req.CheckID })
	if i < 0 {
		return 0, nil, nil, notFound("External status check")
	}
	s.responses = append(s.responses, StatusCheckResponse{Project: p.path, IID: st.mr.IID, SHA: req.SHA, CheckID: req.CheckID, Status: req.Status})
	return http.StatusCreated, nil, map[string]any{
		"id":                    s.id(),
		"merge_request":         map[string]any{"id": st.id, "iid": st.mr.IID, "project_id": p.id, "title": st.mr.Title},
		"external_status_check": map[string]any{"id": p.checks[i].id, "name": p.checks[i].name},
	}, nil
}

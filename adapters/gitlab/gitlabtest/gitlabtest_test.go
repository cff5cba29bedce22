package gitlabtest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

func get(t *testing.T, s *Server, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func newAPI(t *testing.T, s *Server) *gl.Client {
	t.Helper()
	c, err := gl.NewClient(s.Token, gl.WithBaseURL(s.URL), gl.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func manyDiffs(n int) []Diff {
	var ds []Diff
	for i := range n {
		p := fmt.Sprintf("f%03d.go", i)
		ds = append(ds, Diff{OldPath: p, NewPath: p, Diff: "+x\n"})
	}
	return ds
}

func TestToken(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "shop/api", IID: 1})
	for _, tok := range []string{"", "wrong"} {
		if resp := get(t, s, "/api/v4/projects/shop%2Fapi/merge_requests/1", tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
	if resp := get(t, s, "/api/v4/projects/shop%2Fapi/merge_requests/1", Token); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	for _, r := range s.Requests() {
		if strings.Contains(fmt.Sprint(r), Token) {
			t.Errorf("request record keeps the token: %+v", r)
		}
	}
}

func TestProjectAddressing(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "grp/sub.proj", ProjectID: 42, IID: 3, Title: "x"})
	api := newAPI(t, s)
	for _, pid := range []any{42, "42", "grp/sub.proj"} {
		mr, _, err := api.MergeRequests.GetMergeRequest(pid, 3, nil)
		if err != nil {
			t.Fatalf("pid %v: %v", pid, err)
		}
		if mr.ProjectID != 42 || mr.References.Full != "grp/sub.proj!3" {
			t.Errorf("pid %v: project %d, references %q", pid, mr.ProjectID, mr.References.Full)
		}
	}
	if _, _, err := api.MergeRequests.GetMergeRequest("grp/other", 3, nil); err != gl.ErrNotFound {
		t.Errorf("unknown project: err = %v, want ErrNotFound", err)
	}
}

func TestPagination(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "shop/api", IID: 1, Diffs: manyDiffs(250)})

	resp := get(t, s, "/api/v4/projects/shop%2Fapi/merge_requests/1/diffs?per_page=100", Token)
	h := resp.Header
	for k, want := range map[string]string{"X-Page": "1", "X-Per-Page": "100", "X-Total": "250", "X-Total-Pages": "3", "X-Next-Page": "2", "X-Prev-Page": ""} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if l := h.Get("Link"); !strings.Contains(l, `page=2&per_page=100>; rel="next"`) || !strings.Contains(l, `rel="last"`) || !strings.Contains(l, "/projects/shop%2Fapi/") {
		t.Errorf("Link = %q", l)
	}
	resp = get(t, s, "/api/v4/projects/shop%2Fapi/merge_requests/1/diffs?per_page=100&page=3", Token)
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Next-Page") != "" || strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Errorf("last page: X-Next-Page %q, Link %q", resp.Header.Get("X-Next-Page"), resp.Header.Get("Link"))
	}
	if n := strings.Count(string(body), `"new_path"`); n != 50 {
		t.Errorf("last page has %d diffs, want 50", n)
	}

	// client-go's ScanAndCollect follows the headers through all pages.
	api := newAPI(t, s)
	s.ResetRequests()
	opt := &gl.ListMergeRequestDiffsOptions{ListOptions: gl.ListOptions{PerPage: 100}}
	all, err := gl.ScanAndCollect(func(p gl.PaginationOptionFunc) ([]*gl.MergeRequestDiff, *gl.Response, error) {
		return api.MergeRequests.ListMergeRequestDiffs("shop/api", 1, opt, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 250 || all[249].NewPath != "f249.go" {
		t.Errorf("collected %d diffs", len(all))
	}
	if n := s.Calls("/diffs"); n != 3 {
		t.Errorf("calls = %d, want 3", n)
	}
	// The default page size is 20.
	resp = get(t, s, "/api/v4/projects/shop%2Fapi/merge_requests/1/diffs", Token)
	if resp.Header.Get("X-Total-Pages") != "13" {
		t.Errorf("X-Total-Pages = %q with the default per_page, want 13", resp.Header.Get("X-Total-Pages"))
	}
}

func TestFaults(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "shop/api", IID: 1})
	api := newAPI(t, s)

	s.FailNext(2, http.StatusTooManyRequests, http.Header{"Ratelimit-Reset": {"1700000000"}})
	for range 2 {
		_, _, err := api.Users.CurrentUser()
		var er *gl.ErrorResponse
		if !gl.HasStatusCode(err, 429) || !errors.As(err, &er) || er.Response.Header.Get("RateLimit-Reset") != "1700000000" {
			t.Fatalf("err = %v, want 429 with RateLimit-Reset", err)
		}
	}
	if u, _, err := api.Users.CurrentUser(); err != nil || u.Username != DefaultBotUser {
		t.Fatalf("after the faults: %v %v", u, err)
	}

	s.FailPath("/notes", 1, http.StatusBadGateway)
	if _, _, err := api.MergeRequests.GetMergeRequest("shop/api", 1, nil); err != nil {
		t.Fatalf("other path failed: %v", err)
	}
	if _, _, err := api.Notes.ListMergeRequestNotes("shop/api", 1, nil); !gl.HasStatusCode(err, 502) {
		t.Fatalf("err = %v, want 502", err)
	}

	s.FailAfter(http.MethodPost, "/notes", 1, http.StatusInternalServerError)
	if _, _, err := api.Notes.ListMergeRequestNotes("shop/api", 1, nil); err != nil {
		t.Fatalf("GET hit a POST fault: %v", err)
	}
	if _, _, err := api.Notes.CreateMergeRequestNote("shop/api", 1, &gl.CreateMergeRequestNoteOptions{Body: gl.Ptr("hi")}); !gl.HasStatusCode(err, 500) {
		t.Fatalf("err = %v, want 500", err)
	}
	if got := s.Notes("shop/api", 1); len(got) != 1 || got[0] != "hi" {
		t.Errorf("notes = %q: a fault after handling keeps what was created", got)
	}
	if n := len(s.Requests()); n != 7 {
		t.Errorf("requests = %d, want 7", n)
	}
}

func TestCommitStatuses(t *testing.T) {
	s := New(t)
	const sha = "1111111111111111111111111111111111111111"
	s.AddMR(MR{Project: "shop/api", IID: 1, SHA: sha, SourceBranch: "feat", HeadPipelineID: 9, HeadPipelineRef: "refs/merge-requests/1/head"})
	api := newAPI(t, s)
	set := func(state gl.BuildStateValue, pipeline int64, ref string) error {
		opt := &gl.SetCommitStatusOptions{State: state, Name: gl.Ptr("gate"), Description: gl.Ptr("d")}
		if pipeline != 0 {
			opt.PipelineID = gl.Ptr(pipeline)
		}
		if ref != "" {
			opt.Ref = gl.Ptr(ref)
		}
		_, _, err := api.Commits.SetCommitStatus("shop/api", sha, opt)
		return err
	}
	if err := set(gl.Pending, 9, "feat"); err != gl.ErrNotFound {
		t.Errorf("pipeline on another ref: err = %v, want 404", err)
	}
	if err := set(gl.Pending, 9, ""); err != nil {
		t.Fatal(err)
	}
	err := set(gl.Pending, 9, "")
	if !gl.HasStatusCode(err, 400) || !strings.Contains(err.Error(), "Cannot transition status via :enqueue from :pending") {
		t.Errorf("pending twice: err = %v", err)
	}
	if err := set(gl.Success, 9, ""); err != nil {
		t.Fatal(err)
	}
	if err := set(gl.Success, 0, "feat"); err != nil { // a new external pipeline on feat
		t.Fatal(err)
	}
	got := s.Statuses("shop/api", sha)
	if len(got) != 2 || got[0].PipelineID != 9 || got[0].State != "success" || got[0].Ref != "refs/merge-requests/1/head" ||
		got[1].PipelineID == 9 || got[1].Ref != "feat" || got[1].Author != DefaultBotUser {
		t.Errorf("statuses = %+v", got)
	}
	s.SetStatusAs("shop/api", sha, "gate", "failed", "mallory")
	list, _, err := api.Commits.GetCommitStatuses("shop/api", sha, &gl.GetCommitStatusesOptions{Name: gl.Ptr("gate")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Author.Username != "mallory" || list[1].Status != "failed" {
		t.Errorf("latest statuses = %+v", list)
	}
	if _, _, err := api.Commits.GetCommitStatuses("shop/api", "ffff", nil); err != gl.ErrNotFound {
		t.Errorf("unknown commit: err = %v", err)
	}
}

func TestMRListAndUpdate(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "shop/api", IID: 1, Labels: []string{"security-tier::low", "a"}})
	s.AddMR(MR{Project: "shop/api", IID: 2})
	s.SetState("shop/api", 2, "merged")
	api := newAPI(t, s)
	open, _, err := api.MergeRequests.ListProjectMergeRequests("shop/api", &gl.ListProjectMergeRequestsOptions{State: gl.Ptr("opened")})
	if err != nil || len(open) != 1 || open[0].IID != 1 {
		t.Fatalf("opened MRs = %v, %v", open, err)
	}
	add := gl.LabelOptions{"security-tier::high", "b"}
	mr, _, err := api.MergeRequests.UpdateMergeRequest("shop/api", 1, &gl.UpdateMergeRequestOptions{AddLabels: &add})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "security-tier::high", "b"}; fmt.Sprint(mr.Labels) != fmt.Sprint(want) || fmt.Sprint(s.Labels("shop/api", 1)) != fmt.Sprint(want) {
		t.Errorf("labels = %q, want %q", mr.Labels, want)
	}
	s.PushCommit("shop/api", 1, "2222222222222222222222222222222222222222", Diff{NewPath: "x.go", OldPath: "x.go"})
	commits, _, err := api.MergeRequests.GetMergeRequestCommits("shop/api", 1, nil)
	if err != nil || len(commits) != 2 || commits[0].ID != "2222222222222222222222222222222222222222" {
		t.Errorf("commits after push = %v, %v", commits, err)
	}
}

func TestExternalStatusChecks(t *testing.T) {
	s := New(t)
	const sha = "3333333333333333333333333333333333333333"
	s.AddMR(MR{Project: "shop/api", IID: 1, SHA: sha})
	s.AddStatusCheck("shop/api", 5, "gate")
	api := newAPI(t, s)
	checks, _, err := api.ExternalStatusChecks.ListProjectExternalStatusChecks("shop/api", nil)
	if err != nil || len(checks) != 1 || checks[0].ID != 5 || checks[0].Name != "gate" {
		t.Fatalf("checks = %v, %v", checks, err)
	}
	set := func(sha, status string) error {
		_, err := api.ExternalStatusChecks.SetProjectMergeRequestExternalStatusCheckStatus("shop/api", 1,
			&gl.SetProjectMergeRequestExternalStatusCheckStatusOptions{SHA: gl.Ptr(sha), ExternalStatusCheckID: gl.Ptr(int64(5)), Status: gl.Ptr(status)})
		return err
	}
	if err := set(sha, "passed"); err != nil {
		t.Fatal(err)
	}
	if err := set("4444444444444444444444444444444444444444", "passed"); !gl.HasStatusCode(err, 409) {
		t.Errorf("stale sha: err = %v, want 409", err)
	}
	if err := set(sha, "approved"); !gl.HasStatusCode(err, 400) {
		t.Errorf("bad status: err = %v, want 400", err)
	}
	mrChecks, _, err := api.ExternalStatusChecks.ListProjectMergeRequestExternalStatusChecks("shop/api", 1, nil)
	if err != nil || len(mrChecks) != 1 || mrChecks[0].Status != "passed" {
		t.Errorf("MR checks = %v, %v", mrChecks, err)
	}
	if got := s.StatusCheckResponses(); len(got) != 1 || got[0] != (StatusCheckResponse{Project: "shop/api", IID: 1, SHA: sha, CheckID: 5, Status: "passed"}) {
		t.Errorf("responses = %+v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(t)
	s.AddMR(MR{Project: "shop/api", IID: 1})
	api := newAPI(t, s)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			api.Notes.CreateMergeRequestNote("shop/api", 1, &gl.CreateMergeRequestNoteOptions{Body: gl.Ptr(fmt.Sprint(i))})
			s.Notes("shop/api", 1)
			s.Calls("/notes")
		})
	}
	wg.Wait()
	if n := len(s.Notes("shop/api", 1)); n != 20 {
		t.Errorf("notes = %d, want 20", n)
	}
}

func TestNotesUsersAndVersions(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s := New(t)
	s.SetNow(func() time.Time { return now })
	s.SetUser("alice", 201)
	s.AddMR(MR{Project: "shop/api", IID: 1, SHA: strings.Repeat("1", 40), Author: "ann"})
	api := newAPI(t, s)

	// A note is served as stored: author id and username, body, time.
	id := s.AddMRNote("shop/api", 1, Note{Body: "/threatgate approve", Author: "alice", CreatedAt: now.Add(-time.Minute)})
	n, _, err := api.Notes.GetMergeRequestNote("shop/api", 1, id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Author.ID != 201 || n.Author.Username != "alice" || n.Body != "/threatgate approve" || n.System || !n.CreatedAt.Equal(now.Add(-time.Minute)) {
		t.Errorf("note = %+v", n)
	}
	if _, _, err := api.Notes.GetMergeRequestNote("shop/api", 1, id+1000); !errors.Is(err, gl.ErrNotFound) {
		t.Errorf("a missing note: err = %v, want ErrNotFound", err)
	}
	// A rename shows on the notes; the name is free for a new account.
	s.RenameUser("alice", "alice-old")
	s.SetUser("alice", 301)
	if n, _, _ := api.Notes.GetMergeRequestNote("shop/api", 1, id); n.Author.ID != 201 || n.Author.Username != "alice-old" {
		t.Errorf("after the rename the note's author is %d %q, want 201 alice-old", n.Author.ID, n.Author.Username)
	}
	users, _, err := api.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr("ALICE")})
	if err != nil || len(users) != 1 || users[0].ID != 301 || users[0].Username != "alice" {
		t.Errorf("users?username=ALICE = %+v, %v; want the new alice (301)", users, err)
	}
	if users, _, _ := api.Users.ListUsers(&gl.ListUsersOptions{Username: gl.Ptr("nobody")}); len(users) != 0 {
		t.Errorf("users?username=nobody = %+v, want none", users)
	}
	// A note author nobody knew becomes a user with a new id.
	s.AddNote("shop/api", 1, "hi", "eve")
	if id, ok := s.UserID("eve"); !ok || id == 0 {
		t.Errorf("eve has no id")
	}

	// Versions: one per head, newest first.
	now = now.Add(time.Hour)
	s.PushCommit("shop/api", 1, strings.Repeat("2", 40))
	vs, _, err := api.MergeRequests.GetMergeRequestDiffVersions("shop/api", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].HeadCommitSHA != strings.Repeat("2", 40) || !vs[0].CreatedAt.Equal(now) || vs[1].HeadCommitSHA != strings.Repeat("1", 40) {
		t.Errorf("versions = %+v", vs)
	}
}

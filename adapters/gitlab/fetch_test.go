package gitlab

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

const (
	headSHA  = "abc1234000000000000000000000000000000000"
	otherSHA = "def5678000000000000000000000000000000000"
)

// bigMR is shop/api!12 with 250 diffs (a rename, a new and a deleted
// file among them) and commits by ann and bob, committed by the bot.
func bigMR() gitlabtest.MR {
	diffs := []gitlabtest.Diff{
		{OldPath: "auth/old.go", NewPath: "auth/session.go", RenamedFile: true, Diff: "@@ -1 +1 @@\n-a\n+b\n"},
		{OldPath: "secrets.env", NewPath: "secrets.env", NewFile: true, Diff: "@@ -0,0 +1 @@\n+API_KEY=x\n"},
		{OldPath: "legacy.go", NewPath: "legacy.go", DeletedFile: true, Diff: "@@ -1 +0,0 @@\n-x\n"},
	}
	for i := len(diffs); i < 250; i++ {
		p := fmt.Sprintf("pkg/file%03d.go", i)
		diffs = append(diffs, gitlabtest.Diff{OldPath: p, NewPath: p, Diff: fmt.Sprintf("@@ -1 +1 @@\n+line %d\n", i)})
	}
	return gitlabtest.MR{
		Project: "shop/api", ProjectID: 7, IID: 12,
		Title: "Add session auth", Description: "Replaces cookies", Author: "ann",
		SourceBranch: "feature/auth", TargetBranch: "main", SHA: headSHA, State: "opened",
		Labels: []string{"backend", "security::review"}, UpdatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		HeadPipelineID: 501, Diffs: diffs,
		Commits: []gitlabtest.Commit{
			{ID: headSHA, AuthorEmail: "Ann@Example.com", CommitterEmail: "bot@example.com"},
			{ID: "0000000000000000000000000000000000000002", AuthorEmail: "bob@example.com", CommitterEmail: "ann@example.com",
				Body: "Pairing session.\n\nCo-authored-by: Carol Example <Carol@Example.com>\nco-authored-by: not an address\n"},
			{ID: "0000000000000000000000000000000000000001", AuthorEmail: "ann@example.com", CommitterEmail: "BOT@example.com"},
		},
	}
}

func TestFetchMRMapsEverything(t *testing.T) {
	srv := gitlabtest.New(t)
	m := bigMR()
	srv.AddMR(m)
	srv.SetStatusAs("shop/api", headSHA, DefaultStatusName, "pending", srv.BotUser)
	c := newForgeClient(t, srv)

	got, err := c.FetchMR(context.Background(), "shop/api", 12)
	if err != nil {
		t.Fatalf("FetchMR: %v", err)
	}
	if got.Action != bot.MRSeen {
		t.Errorf("Action = %q, want %q", got.Action, bot.MRSeen)
	}
	mr := got.MR
	want := policies.MergeRequest{
		IID: 12, ProjectID: 7, Title: "Add session auth", Description: "Replaces cookies", State: "opened",
		SourceBranch: "feature/auth", TargetBranch: "main", Labels: policies.Labels{"backend", "security::review"},
		Author: policies.User{Username: "ann", Name: "ann"}, SHA: headSHA,
		WebURL:            srv.URL + "/shop/api/-/merge_requests/12",
		UpdatedAt:         m.UpdatedAt,
		PathWithNamespace: "shop/api",
	}
	want.References.Full = "shop/api!12"
	want.ID = mr.ID // assigned by the fake
	gotNoChanges := *mr
	gotNoChanges.Changes = nil
	if !reflect.DeepEqual(gotNoChanges, want) {
		t.Errorf("MR:\n got %+v\nwant %+v", gotNoChanges, want)
	}
	if len(mr.Changes) != 250 {
		t.Fatalf("Changes = %d, want 250 (all pages)", len(mr.Changes))
	}
	for i, wc := range []policies.Change{
		{OldPath: "auth/old.go", NewPath: "auth/session.go", RenamedFile: true, Diff: "@@ -1 +1 @@\n-a\n+b\n"},
		{OldPath: "secrets.env", NewPath: "secrets.env", NewFile: true, Diff: "@@ -0,0 +1 @@\n+API_KEY=x\n"},
		{OldPath: "legacy.go", NewPath: "legacy.go", DeletedFile: true, Diff: "@@ -1 +0,0 @@\n-x\n"},
	} {
		if mr.Changes[i] != wc {
			t.Errorf("Changes[%d] = %+v, want %+v", i, mr.Changes[i], wc)
		}
	}
	if last := mr.Changes[249]; last.NewPath != "pkg/file249.go" {
		t.Errorf("last change = %+v", last)
	}
	if n := srv.Calls("/merge_requests/12/diffs"); n != 3 {
		t.Errorf("diff pages fetched = %d, want 3", n)
	}
	// Authors, committers and Co-authored-by trailers, once each.
	wantAuthors := []string{"ann@example.com", "bot@example.com", "bob@example.com", "carol@example.com"}
	if !slices.Equal(got.CommitAuthors, wantAuthors) {
		t.Errorf("CommitAuthors = %q, want %q", got.CommitAuthors, wantAuthors)
	}
	wantStatus := bot.ForgeStatus{SHA: headSHA, State: "pending", Author: srv.BotUser, Ours: true}
	if got.Status == nil || *got.Status != wantStatus {
		t.Errorf("Status = %+v, want %+v", got.Status, wantStatus)
	}
}

func TestFetchMRByProjectID(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	c := newForgeClient(t, srv)
	got, err := c.FetchMR(context.Background(), "7", 12)
	if err != nil {
		t.Fatalf("FetchMR: %v", err)
	}
	if got.MR.PathWithNamespace != "shop/api" || got.MR.Project() != "shop/api" {
		t.Errorf("PathWithNamespace = %q, want shop/api from references.full", got.MR.PathWithNamespace)
	}
}

func TestFetchMRStatus(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		srv := gitlabtest.New(t)
		srv.AddMR(bigMR())
		srv.SetStatusAs("shop/api", headSHA, "ci/lint", "success", "ci-bot")
		c := newForgeClient(t, srv)
		got, err := c.FetchMR(context.Background(), "shop/api", 12)
		if err != nil {
			t.Fatal(err)
		}
		if want := (bot.ForgeStatus{SHA: headSHA}); got.Status == nil || *got.Status != want {
			t.Errorf("Status = %+v, want %+v", got.Status, want)
		}
		if n := srv.Calls("/api/v4/user"); n != 0 {
			t.Errorf("GET /user = %d, want 0 when there is no status to judge", n)
		}
	})
	t.Run("forged newer status", func(t *testing.T) {
		srv := gitlabtest.New(t)
		srv.AddMR(bigMR())
		srv.SetStatusAs("shop/api", headSHA, DefaultStatusName, "pending", srv.BotUser)
		srv.SetStatusAs("shop/api", headSHA, DefaultStatusName, "success", "mallory")
		srv.SetStatusAs("shop/api", otherSHA, DefaultStatusName, "failed", srv.BotUser)
		c := newForgeClient(t, srv)
		for range 2 {
			got, err := c.FetchMR(context.Background(), "shop/api", 12)
			if err != nil {
				t.Fatal(err)
			}
			want := bot.ForgeStatus{SHA: headSHA, State: "success", Author: "mallory", Ours: false}
			if got.Status == nil || *got.Status != want {
				t.Errorf("Status = %+v, want %+v", got.Status, want)
			}
		}
		if n := srv.Calls("/api/v4/user"); n != 1 {
			t.Errorf("GET /user = %d, want 1 (cached)", n)
		}
	})
	t.Run("external status check", func(t *testing.T) {
		srv := gitlabtest.New(t)
		srv.AddMR(bigMR())
		srv.AddStatusCheck("shop/api", 77, "security review")
		c := newForgeClient(t, srv, func(cfg *Config) { cfg.Gate = GateExternalStatusCheck; cfg.StatusCheckName = "security review" })
		got, err := c.FetchMR(context.Background(), "shop/api", 12)
		if err != nil {
			t.Fatal(err)
		}
		if want := (bot.ForgeStatus{SHA: headSHA, State: "pending", Ours: true}); *got.Status != want {
			t.Errorf("Status = %+v, want %+v", got.Status, want)
		}
		if err := c.SetStatus(context.Background(), bot.Effect{Project: "shop/api", MRIID: 12, SHA: headSHA, Status: bot.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
		got, err = c.FetchMR(context.Background(), "shop/api", 12)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.State != bot.StatusSuccess {
			t.Errorf("State = %q, want success after the check passed", got.Status.State)
		}
	})
}

func TestFetchMRCachesDiffs(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	c := newForgeClient(t, srv)
	ctx := context.Background()
	first, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	diffs, commits := srv.Calls("/merge_requests/12/diffs"), srv.Calls("/merge_requests/12/commits")

	srv.SetLabels("shop/api", 12, "backend", "security-tier::high")
	second, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("/merge_requests/12/diffs"); n != diffs {
		t.Errorf("diff requests = %d after a second fetch at the same head, want %d", n, diffs)
	}
	if n := srv.Calls("/merge_requests/12/commits"); n != commits {
		t.Errorf("commit requests = %d after a second fetch at the same head, want %d", n, commits)
	}
	if !slices.Equal(second.MR.Labels, policies.Labels{"backend", "security-tier::high"}) {
		t.Errorf("Labels = %q: the MR itself must be fresh", second.MR.Labels)
	}
	if !reflect.DeepEqual(first.MR.Changes, second.MR.Changes) || !slices.Equal(first.CommitAuthors, second.CommitAuthors) {
		t.Error("cached changes differ from the fetched ones")
	}
	// A caller changing its copy must not change the cache.
	second.MR.Changes[0].NewPath = "changed"
	second.CommitAuthors[0] = "changed"

	srv.Push("shop/api", 12, gitlabtest.Commit{ID: otherSHA, AuthorEmail: "eve@example.com", CommitterEmail: "eve@example.com"},
		gitlabtest.Diff{OldPath: "auth/login.go", NewPath: "auth/login.go", Diff: "+x\n"})
	third, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("/merge_requests/12/diffs"); n != diffs+1 {
		t.Errorf("diff requests = %d after a push, want %d", n, diffs+1)
	}
	if third.MR.SHA != otherSHA || len(third.MR.Changes) != 1 || third.MR.Changes[0].NewPath != "auth/login.go" {
		t.Errorf("after push: SHA %s, changes %+v", third.MR.SHA, third.MR.Changes)
	}
	if !slices.Contains(third.CommitAuthors, "eve@example.com") {
		t.Errorf("CommitAuthors = %q, want eve's", third.CommitAuthors)
	}

	again, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if again.MR.Changes[0].NewPath != "auth/login.go" {
		t.Errorf("cached copy was changed by a caller: %+v", again.MR.Changes[0])
	}
	if n := srv.Calls("/merge_requests/12/diffs"); n != diffs+1 {
		t.Errorf("diff requests = %d, want %d", n, diffs+1)
	}
}

func TestFetchMRErrors(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	c := newForgeClient(t, srv)
	ctx := context.Background()

	_, err := c.FetchMR(ctx, "shop/api", 99)
	if !isPermanent(err) || err.Error() != "fetch MR shop/api!99: GitLab answered 404 Not Found; project or MR not found, or the token cannot see it" {
		t.Errorf("missing MR: err = %v", err)
	}
	// A failure on the second page of diffs fails the fetch and caches
	// nothing.
	srv.Fail(gitlabtest.Fault{Path: "/diffs", Times: 1, Status: 503})
	_, err = c.FetchMR(ctx, "shop/api", 12)
	if err == nil || isPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if _, err := c.FetchMR(ctx, "shop/api", 12); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, err := c.FetchMR(ctx, "", 12); !isPermanent(err) {
		t.Errorf("empty project: err = %v, want permanent", err)
	}
}

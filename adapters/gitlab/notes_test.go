package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
)

func TestGetNoteIsWhatGitLabStores(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.SetNow(func() time.Time { return t0 })
	seedShop(srv)
	srv.SetUser("alice", 201)
	c := newForgeClient(t, srv)
	ctx := context.Background()

	id := srv.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "LGTM\n/threatgate approve", Author: "alice", CreatedAt: t0.Add(-time.Minute)})
	n, err := c.GetNote(ctx, "shop/api", 12, id)
	if err != nil {
		t.Fatal(err)
	}
	want := Note{ID: id, AuthorID: 201, AuthorUsername: "alice", Body: "LGTM\n/threatgate approve", CreatedAt: t0.Add(-time.Minute)}
	if *n != want {
		t.Errorf("GetNote = %+v, want %+v", *n, want)
	}
	if srv.Calls(fmt.Sprintf("/merge_requests/12/notes/%d", id)) != 1 {
		t.Errorf("GetNote did not read GET .../notes/%d", id)
	}

	sys := srv.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "added 1 commit", Author: "alice", System: true})
	if n, err := c.GetNote(ctx, "shop/api", 12, sys); err != nil || !n.System {
		t.Errorf("system note: %+v, %v", n, err)
	}
	missing := srv.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "x", Author: "alice", NoCreatedAt: true})
	if n, err := c.GetNote(ctx, "shop/api", 12, missing); err != nil || !n.CreatedAt.IsZero() {
		t.Errorf("note without created_at: %+v, %v; want a zero CreatedAt", n, err)
	}

	// A note the API does not have is ErrNotFound, and permanent.
	_, err = c.GetNote(ctx, "shop/api", 12, 99999)
	if !errors.Is(err, ErrNotFound) || !isPermanent(err) {
		t.Errorf("missing note: err = %v, want ErrNotFound", err)
	}
	// A note of another MR is not this MR's.
	srv.AddMR(gitlabtest.MR{Project: "shop/api", IID: 13, Author: "ann"})
	other := srv.AddMRNote("shop/api", 13, gitlabtest.Note{Body: "/threatgate approve", Author: "alice"})
	if _, err := c.GetNote(ctx, "shop/api", 12, other); !errors.Is(err, ErrNotFound) {
		t.Errorf("another MR's note: err = %v, want ErrNotFound", err)
	}
	// An unreadable created_at is ErrMalformed: retrying will not help.
	bad := srv.AddMRNote("shop/api", 12, gitlabtest.Note{Body: "/threatgate approve", Author: "alice", RawCreatedAt: "yesterday"})
	_, err = c.GetNote(ctx, "shop/api", 12, bad)
	if !errors.Is(err, ErrMalformed) || !isPermanent(err) || !strings.Contains(err.Error(), `"yesterday"`) {
		t.Errorf("unreadable created_at: err = %v, want ErrMalformed naming the value", err)
	}
	// A 500 is retried by the caller, not ErrNotFound.
	srv.FailPath("/notes/", 1, http.StatusInternalServerError)
	if _, err := c.GetNote(ctx, "shop/api", 12, id); err == nil || errors.Is(err, ErrNotFound) || isPermanent(err) {
		t.Errorf("500: err = %v, want retryable", err)
	}
}

func TestMRVersionsListEveryHead(t *testing.T) {
	now := t0
	srv := gitlabtest.New(t)
	srv.SetNow(func() time.Time { return now })
	seedShop(srv)
	for i := range 150 {
		now = now.Add(time.Minute)
		srv.PushCommit("shop/api", 12, fmt.Sprintf("%040d", i+1))
	}
	c := newForgeClient(t, srv)
	vs, err := c.MRVersions(context.Background(), "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 151 {
		t.Fatalf("%d versions, want 151 (all pages)", len(vs))
	}
	if vs[0].HeadSHA != fmt.Sprintf("%040d", 150) || !vs[0].CreatedAt.Equal(now) || vs[150].HeadSHA != "abc1234000000000000000000000000000000000" {
		t.Errorf("versions: first %+v, last %+v; want newest first", vs[0], vs[150])
	}
	if head, ok := seenHead(vs, t0.Add(90*time.Second)); !ok || head != fmt.Sprintf("%040d", 1) {
		t.Errorf("seenHead 90s after the start = %q, %v; want the first push", head, ok)
	}
	if _, ok := seenHead(vs, t0.Add(-time.Second)); ok {
		t.Error("seenHead before the first version found one")
	}
	if _, err := c.MRVersions(context.Background(), "shop/api", 99); !isPermanent(err) {
		t.Errorf("versions of a missing MR: err = %v, want permanent", err)
	}
}

func TestUserIDIsCachedForAnHour(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.SetUser("alice", 201)
	c := newForgeClient(t, srv)
	now := t0
	c.now = func() time.Time { return now }
	ctx := context.Background()

	if id, err := c.UserID(ctx, "alice"); err != nil || id != 201 {
		t.Fatalf("UserID(alice) = %d, %v; want 201", id, err)
	}
	if id, err := c.UserID(ctx, "Alice"); err != nil || id != 201 {
		t.Errorf("UserID(Alice) = %d, %v; want 201 (usernames ignore case)", id, err)
	}
	if n := srv.Calls("/api/v4/users"); n != 1 {
		t.Errorf("%d lookups, want 1 (cached)", n)
	}
	// alice renames her account and someone else takes the name: the
	// cache holds the old id for the hour, then the new holder is found.
	srv.RenameUser("alice", "alice-old")
	srv.SetUser("alice", 301)
	now = now.Add(59 * time.Minute)
	if id, _ := c.UserID(ctx, "alice"); id != 201 {
		t.Errorf("within the hour UserID(alice) = %d, want the cached 201", id)
	}
	now = now.Add(2 * time.Minute)
	if id, _ := c.UserID(ctx, "alice"); id != 301 {
		t.Errorf("after the hour UserID(alice) = %d, want 301", id)
	}
	// Nobody has the name: ErrNotFound, not cached.
	if _, err := c.UserID(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserID(nobody): err = %v, want ErrNotFound", err)
	}
	srv.SetUser("nobody", 5)
	if id, err := c.UserID(ctx, "nobody"); err != nil || id != 5 {
		t.Errorf("UserID(nobody) after it exists = %d, %v", id, err)
	}
	// Not a username: no request at all.
	before := srv.Calls("/api/v4/users")
	if _, err := c.UserID(ctx, "a&b=c"); !errors.Is(err, ErrNotFound) || srv.Calls("/api/v4/users") != before {
		t.Errorf("an invalid username: err = %v, or it was looked up", err)
	}

	// The cache is bounded.
	c.mu.Lock()
	for i := range userCacheSize + 10 {
		c.cacheUser(fmt.Sprintf("u%d", i), int64(i+1), now)
	}
	n := len(c.users)
	c.mu.Unlock()
	if n > userCacheSize {
		t.Errorf("cache holds %d names, want at most %d", n, userCacheSize)
	}
}

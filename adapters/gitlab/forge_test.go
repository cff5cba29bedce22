package gitlab

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

func statusEffect(state string) bot.Effect {
	return bot.Effect{
		ID: "eff-" + state, Kind: bot.EffectStatus, Escalation: "ESC-4", Project: "shop/api", MRIID: 12,
		SHA: headSHA, Status: state, Text: bot.IDPlaceholder + " T2: needs 0/2 appsec",
	}
}

// sentBody returns the JSON body of the last request with method whose
// path contains substr.
func sentBody(t *testing.T, srv *gitlabtest.Server, method, substr string) map[string]any {
	t.Helper()
	reqs := srv.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && strings.Contains(reqs[i].Path, substr) {
			var m map[string]any
			if err := json.Unmarshal([]byte(reqs[i].Body), &m); err != nil {
				t.Fatalf("body of %s %s: %v", method, reqs[i].Path, err)
			}
			return m
		}
	}
	t.Fatalf("no %s request to %s", method, substr)
	return nil
}

func TestSetStatusInHeadPipeline(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR()) // head pipeline 501 on feature/auth at headSHA
	c := newForgeClient(t, srv)
	ctx := context.Background()

	if err := c.SetStatus(ctx, statusEffect(bot.StatusPending)); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	want := gitlabtest.Status{
		Name: DefaultStatusName, State: "pending", Description: "ESC-4 T2: needs 0/2 appsec",
		TargetURL: "https://tg.example.com/escalations/ESC-4", PipelineID: 501, Author: srv.BotUser,
		SHA: headSHA, Ref: "feature/auth",
	}
	got := srv.Statuses("shop/api", headSHA)
	if len(got) != 1 {
		t.Fatalf("statuses = %+v, want one", got)
	}
	got[0].ID, got[0].CreatedAt = 0, got[0].CreatedAt.AddDate(0, 0, 0)
	want.CreatedAt = got[0].CreatedAt
	if got[0] != want {
		t.Errorf("status:\n got %+v\nwant %+v", got[0], want)
	}
	if b := sentBody(t, srv, http.MethodPost, "/statuses/"); b["ref"] != "feature/auth" || b["pipeline_id"] != float64(501) {
		t.Errorf("sent ref %v pipeline_id %v", b["ref"], b["pipeline_id"])
	}

	// The same state again is harmless (GitLab answers 400 "Cannot
	// transition status via :enqueue from :pending").
	if err := c.SetStatus(ctx, statusEffect(bot.StatusPending)); err != nil {
		t.Fatalf("SetStatus pending twice: %v", err)
	}
	if err := c.SetStatus(ctx, statusEffect(bot.StatusSuccess)); err != nil {
		t.Fatalf("SetStatus success: %v", err)
	}
	if err := c.SetStatus(ctx, statusEffect(bot.StatusSuccess)); err != nil {
		t.Fatalf("SetStatus success twice: %v", err)
	}
	got = srv.Statuses("shop/api", headSHA)
	if last := got[len(got)-1]; last.State != "success" || last.PipelineID != 501 {
		t.Errorf("last status = %+v, want success in pipeline 501", last)
	}
	if err := c.SetStatus(ctx, statusEffect(bot.StatusFailed)); err != nil {
		t.Fatalf("SetStatus failed: %v", err)
	}
	in, err := c.FetchMR(ctx, "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status.State != "failed" || !in.Status.Ours {
		t.Errorf("fetched status = %+v, want failed and ours", in.Status)
	}
}

func TestSetStatusMergeRequestPipeline(t *testing.T) {
	srv := gitlabtest.New(t)
	m := bigMR()
	m.HeadPipelineRef = "refs/merge-requests/12/head"
	srv.AddMR(m)
	c := newForgeClient(t, srv)
	if err := c.SetStatus(context.Background(), statusEffect(bot.StatusPending)); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	got := srv.Statuses("shop/api", headSHA)
	if len(got) != 1 || got[0].PipelineID != 501 || got[0].Ref != "refs/merge-requests/12/head" {
		t.Errorf("statuses = %+v, want one in pipeline 501 on the MR ref", got)
	}
}

func TestSetStatusWithoutHeadPipelineForSHA(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	srv.PushCommit("shop/api", 12, otherSHA) // pipeline 501 stays on headSHA
	c := newForgeClient(t, srv, func(cfg *Config) { cfg.DashboardURL = ""; cfg.StatusName = "sec" })
	e := statusEffect(bot.StatusFailed)
	e.SHA = otherSHA
	e.Text = strings.Repeat("é", 300)
	if err := c.SetStatus(context.Background(), e); err != nil {
		t.Fatalf("SetStatus: %v", err)
	}
	b := sentBody(t, srv, http.MethodPost, "/statuses/")
	if _, ok := b["pipeline_id"]; ok {
		t.Errorf("sent pipeline_id %v for a commit the head pipeline does not run", b["pipeline_id"])
	}
	if _, ok := b["target_url"]; ok {
		t.Errorf("sent target_url %v without a dashboard", b["target_url"])
	}
	if b["ref"] != "feature/auth" || b["name"] != "sec" {
		t.Errorf("sent ref %v name %v", b["ref"], b["name"])
	}
	got := srv.Statuses("shop/api", otherSHA)
	if len(got) != 1 || got[0].State != "failed" || got[0].PipelineID == 501 {
		t.Fatalf("statuses = %+v", got)
	}
	if n := len([]rune(got[0].Description)); n != 255 || !strings.HasSuffix(got[0].Description, "...") {
		t.Errorf("description is %d characters, want 255 ending in ...", n)
	}
}

func TestSetStatusRefusals(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	c := newForgeClient(t, srv)
	ctx := context.Background()
	e := statusEffect("running")
	if err := c.SetStatus(ctx, e); !isPermanent(err) || !strings.Contains(err.Error(), `want status pending, success or failed, got "running"`) {
		t.Errorf("bad state: err = %v", err)
	}
	e = statusEffect(bot.StatusSuccess)
	e.SHA = "ffffffffffffffffffffffffffffffffffffffff"
	err := c.SetStatus(ctx, e)
	if !isPermanent(err) || !strings.HasPrefix(err.Error(), "set status on shop/api@ffffffff: GitLab answered 404") {
		t.Errorf("unknown commit: err = %v", err)
	}
	if len(srv.Requests()) != 2 {
		t.Errorf("requests = %d, want 2 (read the MR, post the status)", len(srv.Requests()))
	}
}

func TestSetStatusExternalStatusCheck(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	srv.AddStatusCheck("shop/api", 76, "lint")
	srv.AddStatusCheck("shop/api", 77, DefaultStatusName)
	c := newForgeClient(t, srv, func(cfg *Config) { cfg.Gate = GateExternalStatusCheck })
	ctx := context.Background()
	for _, st := range []string{bot.StatusPending, bot.StatusSuccess, bot.StatusFailed} {
		if err := c.SetStatus(ctx, statusEffect(st)); err != nil {
			t.Fatalf("SetStatus %s: %v", st, err)
		}
	}
	want := []gitlabtest.StatusCheckResponse{
		{Project: "shop/api", IID: 12, SHA: headSHA, CheckID: 77, Status: "pending"},
		{Project: "shop/api", IID: 12, SHA: headSHA, CheckID: 77, Status: "passed"},
		{Project: "shop/api", IID: 12, SHA: headSHA, CheckID: 77, Status: "failed"},
	}
	if got := srv.StatusCheckResponses(); !slices.Equal(got, want) {
		t.Errorf("responses:\n got %+v\nwant %+v", got, want)
	}
	if n := srv.Calls("/external_status_checks"); n != 1 {
		t.Errorf("status check lookups = %d, want 1 (cached per project)", n)
	}
	if n := srv.Calls("/statuses/"); n != 0 {
		t.Errorf("commit statuses posted = %d, want none in this mode", n)
	}

	// A stale head is refused by GitLab (409) and not retried.
	e := statusEffect(bot.StatusSuccess)
	e.SHA = otherSHA
	if err := c.SetStatus(ctx, e); !isPermanent(err) {
		t.Errorf("stale sha: err = %v, want permanent", err)
	}

	srv2 := gitlabtest.New(t)
	srv2.AddMR(bigMR())
	srv2.AddStatusCheck("shop/api", 76, "lint")
	c2 := newForgeClient(t, srv2, func(cfg *Config) { cfg.Gate = GateExternalStatusCheck; cfg.StatusCheckName = "security" })
	err := c2.SetStatus(ctx, statusEffect(bot.StatusSuccess))
	if !isPermanent(err) || !strings.Contains(err.Error(), `project shop/api has no external status check named "security" (it has "lint")`) {
		t.Errorf("missing check: err = %v", err)
	}
}

func TestPostNoteNeverTwice(t *testing.T) {
	srv := gitlabtest.New(t)
	srv.AddMR(bigMR())
	srv.AddNote("shop/api", 12, "LGTM", "bob")
	c := newForgeClient(t, srv)
	ctx := context.Background()
	e := bot.Effect{ID: "eff-77", Kind: bot.EffectMRNote, Escalation: "ESC-4", Project: "shop/api", MRIID: 12,
		Text: "Security review required: " + bot.IDPlaceholder}

	// The note is created, but the answer is lost.
	srv.FailAfter(http.MethodPost, "/notes", 1, http.StatusInternalServerError)
	err := c.PostNote(ctx, e)
	if err == nil || isPermanent(err) {
		t.Fatalf("first attempt: err = %v, want retryable", err)
	}
	if n := len(srv.Notes("shop/api", 12)); n != 2 {
		t.Fatalf("notes = %d after the lost answer, want 2", n)
	}
	// The dispatcher retries: nothing is posted again.
	for range 2 {
		if err := c.PostNote(ctx, e); err != nil {
			t.Fatalf("retry: %v", err)
		}
	}
	notes := srv.Notes("shop/api", 12)
	want := []string{"LGTM", "Security review required: ESC-4\n\n<!-- threatgate:effect=eff-77 -->"}
	if !slices.Equal(notes, want) {
		t.Errorf("notes:\n got %q\nwant %q", notes, want)
	}
	q := ""
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/notes") {
			q = r.RawQuery
		}
	}
	for _, p := range []string{"order_by=created_at", "sort=desc", "per_page=100"} {
		if !strings.Contains(q, p) {
			t.Errorf("notes listed with %q, want %s", q, p)
		}
	}

	// Another effect is another note.
	e.ID = "eff-78"
	if err := c.PostNote(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Notes("shop/api", 12)); n != 3 {
		t.Errorf("notes = %d, want 3", n)
	}
}

func TestAddLabels(t *testing.T) {
	srv := gitlabtest.New(t)
	m := bigMR()
	m.Labels = []string{"backend", "security-tier::low"}
	srv.AddMR(m)
	c := newForgeClient(t, srv)
	e := bot.Effect{ID: "eff-9", Kind: bot.EffectMRLabels, Project: "shop/api", MRIID: 12, Labels: []string{"security-tier::high", "security-review"}}
	for range 2 {
		if err := c.AddLabels(context.Background(), e); err != nil {
			t.Fatalf("AddLabels: %v", err)
		}
	}
	want := []string{"backend", "security-tier::high", "security-review"}
	if got := srv.Labels("shop/api", 12); !slices.Equal(got, want) {
		t.Errorf("labels = %q, want %q", got, want)
	}
	if b := sentBody(t, srv, http.MethodPut, "/merge_requests/12"); b["add_labels"] != "security-tier::high,security-review" {
		t.Errorf("sent add_labels %v", b["add_labels"])
	}
	n := len(srv.Requests())
	if err := c.AddLabels(context.Background(), bot.Effect{Project: "shop/api", MRIID: 12}); err != nil || len(srv.Requests()) != n {
		t.Errorf("no labels: err %v, requests %d, want none sent", err, len(srv.Requests())-n)
	}
	if err := c.AddLabels(context.Background(), bot.Effect{Project: "shop/api", MRIID: 12, Labels: []string{"a,b"}}); !isPermanent(err) {
		t.Errorf("label with comma: err = %v, want permanent", err)
	}
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestVerifyStatusCheck(t *testing.T) {
	body := []byte(`{"object_kind":"merge_request"}`)
	const secret = bot.Secret("check-secret")
	for _, tt := range []struct {
		name   string
		sig    string
		secret bot.Secret
		ok     bool
		sigErr bool // ErrStatusCheckSignature
	}{
		{"right", sign("check-secret", body), secret, true, false},
		{"right, upper case hex", strings.ToUpper(sign("check-secret", body)), secret, true, false},
		{"wrong secret", sign("other", body), secret, false, true},
		{"other body", sign("check-secret", []byte(`{}`)), secret, false, true},
		{"missing", "", secret, false, true},
		{"not hex", "zz", secret, false, true},
		{"truncated", sign("check-secret", body)[:32], secret, false, true},
		{"no secret configured", sign("", body), "", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/webhooks/gitlab/status-check", nil)
			if tt.sig != "" {
				r.Header.Set("X-Gitlab-Signature", tt.sig)
			}
			err := VerifyStatusCheck(r, body, tt.secret)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if errors.Is(err, ErrStatusCheckSignature) != tt.sigErr {
				t.Errorf("err = %v, want ErrStatusCheckSignature=%v", err, tt.sigErr)
			}
			if err != nil && strings.Contains(err.Error(), "check-secret") {
				t.Errorf("err repeats the secret: %v", err)
			}
		})
	}
}

func TestParseStatusCheckRequest(t *testing.T) {
	b, err := os.ReadFile("testdata/mr-open.json")
	if err != nil {
		t.Fatal(err)
	}
	var hook struct {
		ObjectAttributes struct {
			IID        int64 `json:"iid"`
			LastCommit struct {
				ID string `json:"id"`
			} `json:"last_commit"`
		} `json:"object_attributes"`
	}
	if err := json.Unmarshal(b, &hook); err != nil {
		t.Fatal(err)
	}
	project, iid, sha, err := ParseStatusCheckRequest(b)
	if err != nil || project != "shop/api" || iid != hook.ObjectAttributes.IID || sha != hook.ObjectAttributes.LastCommit.ID {
		t.Errorf("webhook fixture: got %q %d %q %v", project, iid, sha, err)
	}

	for _, tt := range []struct {
		name, body string
		project    string
		iid        int64
		sha        string
		err        string
	}{
		{"status check payload", `{"object_kind":"merge_request","project":{"id":7,"path_with_namespace":"shop/api"},
			"object_attributes":{"iid":12,"last_commit":{"id":"` + headSHA + `"}},"external_approval_rule":{"id":77,"name":"threatgate"}}`,
			"shop/api", 12, headSHA, ""},
		{"not JSON", `{"project":`, "", 0, "", "not valid JSON"},
		{"wrong type", `{"object_attributes":{"iid":"12"}}`, "", 0, "", "object_attributes.iid"},
		{"empty", `{}`, "", 0, "", "project.path_with_namespace: want a path"},
		{"bad sha", `{"project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":12,"last_commit":{"id":"HEAD~1"}}}`, "", 0, "", "last_commit.id: want a commit SHA"},
		{"bad iid", `{"project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":-1,"last_commit":{"id":"` + headSHA + `"}}}`, "", 0, "", "iid: want a positive number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			project, iid, sha, err := ParseStatusCheckRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || project != tt.project || iid != tt.iid || sha != tt.sha {
				t.Errorf("got %q %d %q %v, want %q %d %q", project, iid, sha, err, tt.project, tt.iid, tt.sha)
			}
		})
	}
}

func FuzzParseStatusCheckRequest(f *testing.F) {
	f.Add([]byte(`{"project":{"path_with_namespace":"shop/api"},"object_attributes":{"iid":12,"last_commit":{"id":"abc1234"}}}`))
	f.Add([]byte(`{"object_attributes":{"iid":1e40}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		project, iid, sha, err := ParseStatusCheckRequest(b)
		if err != nil {
			return
		}
		if !validProjectPath(project) || iid <= 0 || !isSHA(sha) {
			t.Fatalf("accepted %q %d %q", project, iid, sha)
		}
	})
}

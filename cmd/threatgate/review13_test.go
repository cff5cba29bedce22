package main

import (
	"context"
	"encoding/json"
	"github.com/threatgate/threatgate/bot/bottest"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/gitlab/gitlabtest"
	"github.com/threatgate/threatgate/bot"
)

// TestReview13DryRunPagesClaimAStatusInGitLab: in a dry run nothing is
// written to GitLab, yet the escalation page says the gate's status is
// "the commit status threatgate last set in GitLab" and the API's item
// carries "gate" (documented as the commit status threatgate last set),
// so a reader of the page body or of the API (an auditor, a script that
// checks the gate) is told that GitLab shows a status it never got.
func TestReview13DryRunPagesClaimAStatusInGitLab(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.ReadAPIOnly = true
	sha := strings.Repeat("a", 40)
	gl.AddMR(gitlabtest.MR{Project: "shop/api", IID: 12, Title: "Rotate sessions", Author: "ann", SHA: sha, HeadPipelineID: 9,
		Diffs: []gitlabtest.Diff{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go", Diff: "@@ -1 +1,2 @@\n x\n+y\n"}}})
	r := startGitLabServer(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(t.TempDir(), "data")+"\ngitlab:\n  url: "+gl.URL+"\n  mode: dry_run\nweb:\n  dashboard_token_env: TG_DASH\n",
		map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken}, wallClock{})
	r.webhook(t, mrOpenHook)
	r.waitDelivered(t, bot.EffectStatus)
	esc, err := r.db.FindByMR(context.Background(), "shop/api", 12)
	if err != nil {
		t.Fatal(err)
	}
	if sts := gl.Statuses("shop/api", sha); len(sts) != 0 {
		t.Fatalf("statuses in GitLab: %+v", sts)
	}
	_, page := r.get(t, "/escalations/"+esc.ID, dashboardToken)
	if strings.Contains(page, "threatgate last set in GitLab") {
		t.Errorf("the dry run's escalation page says the status was set in GitLab, which has none:\n%s", excerpt(page, `id="gate"`))
	}
	_, body := r.get(t, "/api/escalations", dashboardToken)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("/api/escalations: %v\n%s", err, body)
	}
	if g, ok := list.Items[0]["gate"]; ok {
		if _, marked := list.Items[0]["dry_run"]; !marked {
			t.Errorf("the dry run's API item has gate %v (\"the commit status threatgate last set\") with nothing to say it was never sent", g)
		}
	}
}

func excerpt(s, at string) string {
	i := strings.Index(s, at)
	if i < 0 {
		return s
	}
	return s[i:min(len(s), i+400)]
}

// TestReview13ReadyzTellsOutsidersProjectPaths: /readyz answers anyone
// (no dashboard token: load balancers call it, and it is on the listener
// that takes GitLab's webhooks), and while GitLab fails its body names
// the request that failed: the project path and MR number of a private
// project, to an outsider without the dashboard token.
func TestReview13ReadyzTellsOutsidersProjectPaths(t *testing.T) {
	gl := gitlabtest.New(t)
	gl.AddMR(gitlabtest.MR{Project: "secret-group/acquisition-target", IID: 12, Author: "ann"})
	clock := bottest.NewClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	r := startGitLabServer(t, "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(t.TempDir(), "data")+"\ngitlab:\n  url: "+gl.URL+"\nweb:\n  dashboard_token_env: TG_DASH\n",
		map[string]string{"THREATGATE_GITLAB_TOKEN": gl.Token, "THREATGATE_GITLAB_WEBHOOK_SECRET": webhookSecret, "TG_DASH": dashboardToken}, clock)
	gl.FailNext(1000, http.StatusBadGateway, nil)
	r.s.client.FetchMR(context.Background(), "secret-group/acquisition-target", 12)
	clock.Advance(61 * time.Second)
	code, body := r.get(t, "/readyz", "")
	if code != 503 {
		t.Fatalf("/readyz = %d %q, want 503", code, body)
	}
	if strings.Contains(body, "acquisition-target") {
		t.Errorf("/readyz, asked without the dashboard token, names a project and MR: %q", body)
	}
}

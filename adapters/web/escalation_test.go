package web_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/bot"
)

func TestEscalationShowsCommitAuthorsNotInThePolicy(t *testing.T) {
	s := newDashSite(t)
	in := s.mr(1, "aaa111", "Session rework", bot.MROpen, "internal/auth/session.go")
	// ann and bob are in the policy (by e-mail, in any case, and by GitLab
	// name); the others are not.
	in.MR.CommitAuthors = []string{"ANN@example.com", "mallory@evil.example", "bob", "<b>eve</b>@evil.example", "mallory@evil.example"}
	s.handle(in)
	s.handle(s.mr(2, "bbb222", "Login rework", bot.MROpen, "internal/auth/login.go"))

	page := body(t, s.get("/escalations/ESC-1"))
	wantContains(t, page, "Commit authors not in the policy: mallory@evil.example, &lt;b&gt;eve&lt;/b&gt;@evil.example</strong>",
		"Nobody in the policy matches these authors")
	wantNotContains(t, page, "<b>eve</b>")
	if strings.Contains(section(t, page, "unknown-authors"), "ANN@example.com") {
		t.Error("a commit author the policy knows is listed as unknown")
	}

	// The MR author alone, who is in the policy: no such line.
	wantNotContains(t, body(t, s.get("/escalations/ESC-2")), "not in the policy")
}

func TestOutsideTextIsEscapedOnThePages(t *testing.T) {
	s := newDashSite(t)
	const title = "<script>alert(1)</script> @all"
	s.handle(s.mr(1, "aaa111", title, bot.MROpen, `internal/auth/<img src=x onerror=alert(2)>.go`))
	s.say("UBOB", "/threatgate dissent ESC-1 <b onclick=alert(3)>no</b> @here")
	s.say("UANN", "/threatgate artifact ESC-1 threat-model <a href=javascript:alert(4)>tm</a>")

	for _, p := range []string{"/", "/escalations/ESC-1"} {
		res := s.get(p)
		wantStatus(t, res, http.StatusOK)
		page := body(t, res)
		wantContains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt; @all")
		wantNotContains(t, page, "<script>", "<img", "<b onclick", "<a href=javascript")
	}
	page := body(t, s.get("/escalations/ESC-1"))
	wantContains(t, page, "&lt;img src=x onerror=alert(2)&gt;", "&lt;b onclick=alert(3)&gt;no&lt;/b&gt; @here", "&lt;a href=javascript:alert(4)&gt;tm&lt;/a&gt;")
}

// TestNoUnescapedHTMLTypes keeps text from outside threatgate away from
// html/template's "trusted" types: only the page body (made by
// html/template itself), the chart (numbers and escaped labels) and
// safeURL (http and https URLs only) may make one.
func TestNoUnescapedHTMLTypes(t *testing.T) {
	allowed := map[string]int{"render.go": 2, "chart.go": 1}
	conv := regexp.MustCompile(`template\.(HTML|HTMLAttr|JS|JSStr|CSS|URL|Srcset)\(`)
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(conv.FindAll(src, -1)); n != allowed[f] {
			t.Errorf("%s converts to a trusted template type %d times, want %d: text from outside must go through html/template's escaping", f, n, allowed[f])
		}
	}
}

package web_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/threatgate/threatgate/bot"
)

// TestReview13GateTextKeepsThePlaceholder: the gate's description
// recorded with the decision that set it is the effect's text before the
// escalation had an id, so a new escalation's page and API item show
// "{esc} T2: needs ..." where GitLab shows "ESC-1 T2: needs ...".
func TestReview13GateTextKeepsThePlaceholder(t *testing.T) {
	s := newDashSite(t)
	s.handle(s.mr(1, "aaa111aaa111", "rotate tokens", bot.MROpen, "internal/auth/session.go"))
	b, res := s.apiList("/api/escalations")
	if res.StatusCode != 200 || len(b.Items) != 1 {
		t.Fatalf("%d %+v", res.StatusCode, b)
	}
	var raw struct {
		Items []struct {
			Gate *struct {
				Description string `json:"description"`
			} `json:"gate"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body(t, s.get("/api/escalations"))), &raw); err != nil {
		t.Fatal(err)
	}
	if g := raw.Items[0].Gate; g == nil || strings.Contains(g.Description, bot.IDPlaceholder) {
		t.Errorf("API gate = %+v; want the description GitLab got, with ESC-1", g)
	}
	if page := body(t, s.get("/escalations/ESC-1")); strings.Contains(page, bot.IDPlaceholder) {
		i := strings.Index(page, bot.IDPlaceholder)
		t.Errorf("the escalation page shows the placeholder: …%s…", page[max(0, i-80):min(len(page), i+80)])
	}
}

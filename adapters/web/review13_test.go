package web_test

import (
	"encoding/json"
	"html"
	"slices"
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

// TestReview13WaitedOnLinkListsNothing: the dashboard's "People most
// waited on" counts whom bot.WaitingOn names (an arbiter for a dispute)
// and links to /escalations?open=true&person=<id>, but the person filter
// reads the stored Escalation.Waiting (the matrix's approvers, none once
// disputed), so the link of "dave 1 ESC-1" lists nothing. docs/API.md
// says person matches "the people it waits on now".
func TestReview13WaitedOnLinkListsNothing(t *testing.T) {
	s := newDashSite(t)
	s.handle(s.mr(1, "aaa111aaa111", "rotate tokens", bot.MROpen, "internal/auth/session.go"))
	s.say("UANN", "/threatgate artifact ESC-1 threat-model https://wiki.example.com/tm-1")
	s.say("UANN", "/threatgate artifact ESC-1 rollback-plan revert it")
	s.say("UALICE", `/approve ESC-1 --check data-sensitivity="none" fine by me`)
	s.say("UBOB", "/threatgate reject ESC-1 the token never expires")
	e, err := s.db.FindEscalation(t.Context(), "ESC-1")
	if err != nil || e.State != bot.StateDisputed {
		t.Fatalf("ESC-1 is %v (%v); want disputed", e.State, err)
	}
	if w := bot.WaitingOn(e, s.pol); len(w) != 1 || w[0] != "dave" {
		t.Fatalf("WaitingOn = %v; want the arbiter dave", w)
	}
	dash := body(t, s.get("/"))
	link := `/escalations?open=true&amp;person=dave`
	if !strings.Contains(dash, link) {
		t.Fatalf("the dashboard does not link dave's load (%s)", link)
	}
	if got := s.apiIDs("/api/escalations?open=true&person=dave"); len(got) != 1 || got[0] != "ESC-1" {
		t.Errorf("the dashboard says ESC-1 waits on dave; its link's list (person=dave, open=true) gives %v", got)
	}
}

// TestReview13ExportLinkDropsFilters: the All escalations page offers
// "Evidence bundles of these escalations", but its link carries only
// tier, project, person and state: with flag, open, since or until the
// download holds escalations the list does not (here: the list is the
// forged-status one, ESC-1; the download is every decision of the year).
func TestReview13ExportLinkDropsFilters(t *testing.T) {
	s := newDashSite(t)
	s.seed()
	listed := s.apiIDs("/api/escalations?flag=forged")
	page := body(t, s.get("/escalations?flag=forged"))
	i := strings.Index(page, `id="export-list"`)
	if i < 0 {
		t.Fatal("no export link")
	}
	start := strings.LastIndex(page[:i], `href="`) + len(`href="`)
	link := html.UnescapeString(page[start : start+strings.Index(page[start:], `"`)])
	res := s.get(link)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d", link, res.StatusCode)
	}
	names, _ := unzip(t, []byte(body(t, res)))
	for _, n := range names {
		id := strings.TrimSuffix(n, ".md")
		if n != id && id != "index" && !slices.Contains(listed, id) {
			t.Errorf("the export of the list %v (link %s) holds %s", listed, link, n)
		}
	}
}

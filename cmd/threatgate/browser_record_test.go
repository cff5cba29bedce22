package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserAllEscalations drives the All escalations page of the demo
// (seven seeded escalations: approved, bypassed, disputed, deferred, in
// review and overdue, awaiting artifacts, a manual urgent one) in a real
// Chromium: the nav entry, the dashboard's bypassed tile, the filter form
// (state, tier with open, person, a time range), the next page, and
// screenshots at desktop (1280px) and phone (390px) width.
func TestBrowserAllEscalations(t *testing.T) {
	ctx := newBrowser(t, 120*time.Second)
	base := startDemo(t)

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	submit := func(what string, sel string) {
		t.Helper()
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	rows := func() []string {
		t.Helper()
		// Rows' text, one per row, from the page as the browser shows it.
		out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#all-escalations tbody tr")).map(r => r.innerText)`))
		if err != nil {
			t.Fatalf("read the rows: %v", err)
		}
		return out
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	// The nav leads to the whole record: all seven, closed ones included.
	step("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("body")))
	submit("follow the nav", `nav a[href="/escalations"]`)
	if all := rows(); len(all) != 7 {
		t.Fatalf("All escalations shows %d rows, want the 7 seeded:\n%s", len(all), strings.Join(all, "\n"))
	}

	// The dashboard's bypassed tile leads to the bypassed merge.
	step("back to the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("body")))
	submit("click the bypassed tile", `.cards a[href="/escalations?state=bypassed"]`)
	if got := rows(); len(got) != 1 || !strings.Contains(got[0], "bypassed") || !strings.Contains(got[0], "merged") {
		t.Fatalf("the bypassed tile leads to %s with rows:\n%s", location(), strings.Join(got, "\n"))
	}

	// The form: open T2 escalations (disputed, awaiting artifacts, the
	// manual one).
	step("clear the filters", chromedp.Navigate(base+"/escalations"), chromedp.WaitVisible(chromedp.CSS("#f-tier")))
	step("choose T2, open", chromedp.SetValue(chromedp.CSS("#f-tier"), "T2"), chromedp.SetValue(chromedp.CSS("#f-open"), "true"))
	submit("filter by tier and open", `form.filters button[type="submit"]`)
	got := rows()
	if len(got) != 3 || !strings.Contains(location(), "tier=T2") || !strings.Contains(location(), "open=true") {
		t.Fatalf("T2 open at %s:\n%s", location(), strings.Join(got, "\n"))
	}
	for _, r := range got {
		if !strings.Contains(r, "T2") || strings.Contains(r, "merged") || strings.Contains(r, "approved") {
			t.Errorf("T2 open lists %q", r)
		}
	}
	// The form keeps what was chosen.
	if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#f-tier").value`)); v != "T2" {
		t.Errorf("the tier select shows %q after filtering, want T2", v)
	}

	// A person: bob approved the approved one and is on others.
	step("clear", chromedp.Navigate(base+"/escalations"), chromedp.WaitVisible(chromedp.CSS("#f-person")))
	step("type a person", chromedp.SetValue(chromedp.CSS("#f-person"), "bob"), chromedp.SetValue(chromedp.CSS("#f-state"), "approved"))
	submit("filter by person and state", `form.filters button[type="submit"]`)
	if got := rows(); len(got) != 1 || !strings.Contains(got[0], "approved") {
		t.Errorf("person=bob, state=approved:\n%s", strings.Join(got, "\n"))
	}

	// A time range in the future: nothing, said so.
	tomorrow := time.Now().UTC().AddDate(0, 0, 2).Format(time.DateOnly)
	step("range", chromedp.Navigate(base+"/escalations?since="+tomorrow), chromedp.WaitVisible(chromedp.CSS("main")))
	if got := rows(); len(got) != 0 {
		t.Errorf("opened from %s: %d rows", tomorrow, len(got))
	}
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(txt, "No escalation matches these filters.") {
		t.Errorf("an empty range does not say so:\n%s", txt)
	}

	// A refused value: the page says which parameter, the form stays.
	step("a bad limit", chromedp.Navigate(base+"/escalations?limit=5000"), chromedp.WaitVisible(chromedp.CSS("#filter-problem")))
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#filter-problem"))); !strings.Contains(txt, "limit: want a whole number from 1 to 1000") {
		t.Errorf("refusal: %q", txt)
	}

	// Pages: three at a time, then the next page.
	step("page of three", chromedp.Navigate(base+"/escalations?limit=3"), chromedp.WaitVisible(chromedp.CSS("#next-page")))
	first := rows()
	submit("next page", "#next-page")
	second := rows()
	if len(first) != 3 || len(second) != 3 || first[0] == second[0] || !strings.Contains(location(), "cursor=") {
		t.Errorf("pages of three:\n%s\n--\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}

	// Screenshots of the whole record, desktop and phone.
	dir := screenshotDir(t)
	for _, shot := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"all-escalations-desktop.png", 1280, 900, false},
		{"all-escalations-phone.png", 390, 844, true},
	} {
		var opts []chromedp.EmulateViewportOption
		if shot.mobile {
			opts = append(opts, chromedp.EmulateScale(3))
		}
		step("viewport "+shot.name, chromedp.EmulateViewport(shot.width, shot.height, opts...),
			chromedp.Navigate(base+"/escalations"), chromedp.WaitVisible(chromedp.CSS("#all-escalations")))
		// On a phone the page must not scroll sideways.
		if shot.mobile {
			w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if err != nil || w > int(shot.width) {
				t.Errorf("at %dpx the page is %dpx wide (%v): it scrolls sideways", shot.width, w, err)
			}
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (less is JPEG)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, shot.name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
}

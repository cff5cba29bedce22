package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The demo's simulated GitLab in a real headless Chromium: push, merge
// without approval, the console on a desktop and on a phone, and
// screenshots of what a newcomer sees.
//
// Screenshots go to the directory named by THREATGATE_SCREENSHOTS (made
// when missing; CI keeps it as an artifact), by default the test's
// temporary directory: dashboard, escalation page and console, each at
// 1280 px (desktop) and 390 px (phone) wide.

// newBrowser starts headless Chromium and returns a context for it, bound
// by limit; the browser stops when the test ends.
func newBrowser(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	exe := chromiumPath()
	if exe == "" {
		t.Skip("needs Chromium: install Debian's chromium package (.ci/run does), then run the tests again")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.WindowSize(1280, 1000))
	// As in TestBrowserConsoleToDashboard: no deadline on the first run,
	// and three tries on a loaded machine.
	var startErr error
	for try := 1; try <= 3; try++ {
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		c, cancelB := chromedp.NewContext(actx)
		if startErr = chromedp.Do(c); startErr == nil {
			t.Cleanup(cancelA)
			t.Cleanup(cancelB)
			ctx, cancel := context.WithTimeout(c, limit)
			t.Cleanup(cancel)
			return ctx
		}
		t.Logf("start chromium, try %d: %v", try, startErr)
		cancelB()
		cancelA()
	}
	t.Fatalf("start chromium: %v", startErr)
	return nil
}

// screenshotDir is where screenshots go: $THREATGATE_SCREENSHOTS, else a
// temporary directory of the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("THREATGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// js is an action that evaluates expr and ignores its value, for
// RunResponse (which waits for the navigation expr starts).
func js(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[any](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}

// demoMR is an MR of GET /api/demo/gitlab.
type demoMR struct {
	Ref, Head, Gate, Escalation, State string
	GateSHA                            string `json:"gate_sha"`
	Bypassed                           bool
}

// waitMR polls the simulated GitLab until the MR of esc satisfies ok, or
// fails after a deadline; the dispatcher delivers in the background.
func waitMR(t *testing.T, base, esc, what string, ok func(demoMR) bool) demoMR {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last demoMR
	for {
		resp, err := http.Get(base + "/api/demo/gitlab")
		if err != nil {
			t.Fatal(err)
		}
		var mrs []demoMR
		err = json.NewDecoder(resp.Body).Decode(&mrs)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mrs {
			if m.Escalation == esc {
				if last = m; ok(m) {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulated GitLab did not show %s %s within 30s; last %+v", esc, what, last)
		}
		<-tick.C
	}
}

func TestBrowserDemoGate(t *testing.T) {
	ctx := newBrowser(t, 150*time.Second)
	base := startDemo(t)
	shots := screenshotDir(t)

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	click := func(what, sel string) {
		t.Helper()
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) bool {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return b
	}
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}

	// The samples show the tier the policy gives them; the picker switches
	// at once (no Switch button needed).
	step("open the console", chromedp.Navigate(base+"/console?as=frank"), chromedp.WaitVisible(chromedp.CSS("#sample-auth-session")))
	if got := text("#sample-tier-auth-session"); got != "opens as T2" {
		t.Errorf("auth-session's button says %q, want \"opens as T2\"", got)
	}
	if got := text("#sample-tier-docs-only"); got != "no review" {
		t.Errorf("docs-only's button says %q, want \"no review\"", got)
	}
	if !eval(`document.getElementById("as-switch").hidden && !document.getElementById("help").open`) {
		t.Error("the Switch button shows, or the help is open, with scripts on")
	}
	if _, err := chromedp.RunResponse(ctx, js(`(() => { const s = document.getElementById("as"); s.value = "carol"; s.dispatchEvent(new Event("change")); })()`)); err != nil {
		t.Fatalf("choose carol: %v", err)
	}
	if got := text("#send-button"); got != "Send as carol" {
		t.Fatalf("after choosing carol the console sends as %q", got)
	}

	// carol opens her own auth change, and cannot approve it.
	click("open a sample MR", "#sample-auth-session")
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`thread=(ESC-\d+)`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("after opening a sample the console is at %s, not in a thread", loc)
	}
	esc := m[1]
	say := func(as, command, want string) {
		t.Helper()
		step("act as "+as, chromedp.Navigate(base+"/console?as="+as+"&thread="+esc), chromedp.WaitVisible(chromedp.CSS("#text")))
		step("type "+command, chromedp.SetValue(chromedp.CSS("#text"), command))
		click("send "+command, "#send-button")
		if got := text("#posts"); !strings.Contains(got, want) {
			t.Fatalf("after %q the thread does not say %q:\n%s", command, want, got)
		}
	}
	checks := " --check data-sensitivity=none --check access-implications=tighter --check regulatory=none --check cross-system-dependencies=none"
	say("carol", "/approve"+checks+" my own change", "you wrote this merge request")
	say("frank", "/threatgate artifact threat-model https://wiki.example.com/tm/session-rotation", "threat-model added")
	say("frank", "/threatgate artifact impact-matrix https://wiki.example.com/impact/sessions", "impact-matrix added")
	say("frank", "/threatgate artifact test-evidence https://ci.example.com/jobs/4242", "every required artifact is in")
	say("bob", "/threatgate risk 4 likelihood 2, impact 2", "Residual risk of")
	say("alice", "/approve"+checks+" rotation reviewed", "Approval from alice")
	approved := waitMR(t, base, esc, "gate success on its head", func(m demoMR) bool { return m.Gate == "success" && m.GateSHA == m.Head })
	panel := "#mr-" + regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(approved.Ref, "-")
	gate := "#gate-" + panel[len("#mr-"):]

	// A push: the approval goes stale, the gate goes pending on the new head.
	step("back to the thread", chromedp.Navigate(base+"/console?as=frank&thread="+esc), chromedp.WaitVisible(chromedp.CSS(panel)))
	if got := text(gate); !strings.Contains(got, "success") || !strings.Contains(got, "(the head)") {
		t.Errorf("the panel's gate before the push: %q", got)
	}
	click("push a commit", "#push-"+panel[len("#mr-"):])
	if got := text("#posts"); !strings.Contains(got, "Pushed commit") {
		t.Fatalf("the thread does not tell of the push:\n%s", got)
	}
	pushed := waitMR(t, base, esc, "gate pending on a new head", func(m demoMR) bool {
		return m.Head != approved.Head && m.Gate == "pending" && m.GateSHA == m.Head
	})
	step("reload the thread", chromedp.Navigate(base+"/console?as=frank&thread="+esc), chromedp.WaitVisible(chromedp.CSS(gate)))
	if got := text(gate); !strings.Contains(got, "pending") || !strings.Contains(got, pushed.Head[:7]) || !strings.Contains(got, "(the head)") {
		t.Errorf("the panel's gate after the push: %q; want pending on %s", got, pushed.Head[:7])
	}
	if state := text("#thread-" + esc + " .state"); state == "approved" {
		t.Errorf("after a push %s is still %s", esc, state)
	}
	// The thread scrolls to its newest post.
	if !eval(`(() => { const p = document.getElementById("posts"); return p.scrollHeight > p.clientHeight && p.scrollHeight - p.clientHeight - p.scrollTop <= 2; })()`) {
		t.Error("the thread is not scrolled to its newest post (or too short to scroll)")
	}
	step("open the escalation page", chromedp.Navigate(base+"/escalations/"+esc), chromedp.WaitVisible(chromedp.CSS("body")))
	if page := text("body"); !strings.Contains(page, "stale") {
		t.Errorf("the escalation page does not show alice's approval as stale")
	}

	// A merge without approval is recorded as a bypass, and shown.
	step("back to the thread", chromedp.Navigate(base+"/console?as=frank&thread="+esc), chromedp.WaitVisible(chromedp.CSS(panel)))
	click("merge", "#merge-"+panel[len("#mr-"):])
	if got := text("#posts"); !strings.Contains(got, "recorded as a bypass") {
		t.Errorf("the thread does not say the merge was a bypass:\n%s", got)
	}
	waitMR(t, base, esc, "merged, a bypass", func(m demoMR) bool { return m.State == "merged" && m.Bypassed })
	step("reload the thread", chromedp.Navigate(base+"/console?as=frank&thread="+esc), chromedp.WaitVisible(chromedp.CSS(panel)))
	if got := text(panel); !strings.Contains(got, "bypassed") || !strings.Contains(got, "merged") {
		t.Errorf("the panel after the merge: %q; want merged, bypassed", got)
	}
	step("open the escalation page", chromedp.Navigate(base+"/escalations/"+esc), chromedp.WaitVisible(chromedp.CSS("body")))
	if page := strings.ToLower(text("body")); !strings.Contains(page, "bypass") {
		t.Errorf("the escalation page does not show the bypass")
	}

	// Screenshots at desktop and phone width; on a phone the picker and
	// the samples come before the thread.
	for _, w := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 1000}, {"phone", 390, 844}} {
		step("viewport "+w.name, chromedp.EmulateViewport(w.width, w.height))
		step("dashboard "+w.name, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("main")))
		shoot("dashboard-" + w.name)
		step("escalation "+w.name, chromedp.Navigate(base+"/escalations/"+esc), chromedp.WaitVisible(chromedp.CSS("main")))
		shoot("escalation-" + w.name)
		step("console "+w.name, chromedp.Navigate(base+"/console?as=frank&thread="+esc), chromedp.WaitVisible(chromedp.CSS("#posts")))
		// Side by side on a desktop (the picker on the left), stacked on
		// a phone (the picker on top).
		first := `(() => { const r = s => document.querySelector(s).getBoundingClientRect(); return r(".console-controls").right <= r(".console-main").left; })()`
		if w.name == "phone" {
			first = `(() => { const r = s => document.querySelector(s).getBoundingClientRect(); return r(".console-controls").bottom <= r(".console-main").top && r("#sample-auth-session").top < r("#posts").top; })()`
		}
		if !eval(first) {
			t.Errorf("%s: the picker and the samples do not come before the thread", w.name)
		}
		if w.name == "phone" && !eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
			t.Errorf("phone: the console is wider than the screen")
		}
		shoot("console-" + w.name)
	}
}

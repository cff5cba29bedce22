package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (or Chrome). .ci/run installs it.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startDemo runs `threatgate demo` on a free loopback port and returns its
// base URL; the demo stops when the test ends.
func startDemo(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("demo exited with %d", code)
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop within 30s")
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := regexp.MustCompile(`open (http://\S+?)/ `).FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("the demo printed no URL within 60s")
		return ""
	}
}

// TestBrowserConsoleToDashboard drives the demo in a real headless
// Chromium: open the console, open a sample MR, hand in the artifacts as
// its author, approve as an appsec member, and see the dashboard show the
// escalation approved. A screenshot of the dashboard is saved.
func TestBrowserConsoleToDashboard(t *testing.T) {
	exe := chromiumPath()
	if exe == "" {
		t.Skip("needs Chromium: install Debian's chromium package (.ci/run does), then run the tests again")
	}
	base := startDemo(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.WindowSize(1280, 1000))
	// Start the browser with no deadline (a deadline on the first run
	// would kill it), then bound every step. On a loaded machine (CI runs
	// every package's tests at once) Chromium sometimes fails to come up
	// the first time: it gets three tries.
	var bctx context.Context
	var startErr error
	for try := 1; try <= 3; try++ {
		actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
		defer cancelA()
		c, cancelB := chromedp.NewContext(actx)
		defer cancelB()
		if startErr = chromedp.Do(c); startErr == nil {
			bctx = c
			break
		}
		t.Logf("start chromium, try %d: %v", try, startErr)
		cancelB()
		cancelA()
	}
	if bctx == nil {
		t.Fatalf("start chromium: %v", startErr)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
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

	step("open the console", chromedp.Navigate(base+"/console?as=frank"), chromedp.WaitVisible(chromedp.CSS("#sample-auth-session")))
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#sample-auth-session"))); err != nil {
		t.Fatalf("open a sample MR: %v", err)
	}
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
		// Clicking posts the form; RunResponse waits for the page that the
		// console redirects back to.
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#send-button"))); err != nil {
			t.Fatalf("send %q: %v", command, err)
		}
		if got := text("#posts"); !strings.Contains(got, want) {
			t.Fatalf("after %q the thread does not say %q:\n%s", command, want, got)
		}
	}
	say("frank", "/threatgate artifact threat-model https://wiki.example.com/tm/session-rotation", "threat-model added")
	say("frank", "/threatgate artifact impact-matrix https://wiki.example.com/impact/sessions", "impact-matrix added")
	say("alice", "/approve too early", "still needs test-evidence")
	say("frank", "/threatgate artifact test-evidence https://ci.example.com/jobs/4242", "every required artifact is in")
	say("alice", "/approve --check data-sensitivity=none --check access-implications=tighter --check regulatory=none --check cross-system-dependencies=none rotation reviewed", "none is recorded")
	say("bob", "/threatgate risk 4 likelihood 2, impact 2", "Residual risk of")
	say("alice", "/approve --check data-sensitivity=none --check access-implications=tighter --check regulatory=none --check cross-system-dependencies=none rotation reviewed", "Approval from alice")

	step("see the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("body")))
	if approved := text("#approved"); !strings.Contains(approved, esc) {
		t.Fatalf("the dashboard does not list %s as approved:\n%s", esc, approved)
	}
	step("open the escalation page", chromedp.Navigate(base+"/escalations/"+esc), chromedp.WaitVisible(chromedp.CSS("body")))
	page := text("body")
	for _, want := range []string{"approved", "alice", "rotation reviewed", "chain verified"} {
		if !strings.Contains(strings.ToLower(page), strings.ToLower(want)) {
			t.Errorf("the escalation page lacks %q", want)
		}
	}
	step("back to the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("body")))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("THREATGATE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "threatgate-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the dashboard: %s (%d bytes)", shot, len(png))
}

package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/policies"
)

// Console is the local chat surface: one thread per escalation, a box to
// type the same commands as in Slack, and a picker for which person of the
// policy you act as. It implements bot.Chat, so the dispatcher posts into
// its threads exactly as it would into Slack. Because it lets anyone act as
// anyone, it is on only in demo mode or when web.console is configured, and
// its page says so. Threads live in memory; the escalations themselves are
// in the store.
type Console struct {
	Web     *Server // renders the page in the shared layout, and its CSRF
	Engine  Handler
	Samples Samples // the demo's simulated GitLab; nil outside the demo
	Log     *slog.Logger

	mu      sync.Mutex
	threads map[string]*thread // at most maxThreads: the least recently updated go first
	general []Post             // replies to commands outside any thread; the last maxPosts
	keys    map[string]bool    // effect keys posted: the last maxKeys (keyRing)
	keyRing []string
	keyNext int
}

var _ bot.Chat = (*Console)(nil)

// SimulatedGitLab is the demo's GitLab seen from the console: its merge
// requests and what a person does to them there. The console uses it when
// its Samples are one.
type SimulatedGitLab interface {
	// MergeRequests lists the MRs, newest first, as the simulated GitLab
	// holds them.
	MergeRequests(ctx context.Context) []SimMR
	// Act pushes a commit to, merges, closes or reopens (action "push",
	// "merge", "close", "reopen") the MR ref ("group/proj!12"), tells
	// threatgate as GitLab would, and returns the MR's escalation ("" for
	// none) and what happened. An MR it does not hold is an error wrapping
	// ErrUnknownMR; an unknown action or one the MR's state does not allow
	// is a *bot.Problem.
	Act(ctx context.Context, ref, action string) (escalation, reply string, err error)
}

// ErrUnknownMR is wrapped by SimulatedGitLab.Act for an MR the simulated
// GitLab does not hold.
var ErrUnknownMR = errors.New("unknown merge request")

// SimMR is one merge request as the simulated GitLab holds it.
type SimMR struct {
	Ref      string `json:"ref"` // "group/proj!12"
	Project  string `json:"project"`
	IID      int64  `json:"mr_iid"`
	Title    string `json:"title"`
	Author   string `json:"author"`
	State    string `json:"state"` // opened, merged, closed
	Head     string `json:"head"`
	Sample   string `json:"sample,omitempty"` // the sample it was opened from
	Gate     string `json:"gate,omitempty"`   // the gate's commit status: pending, success, failed...; "" none yet
	GateSHA  string `json:"gate_sha,omitempty"`
	GateText string `json:"gate_text,omitempty"`
	// Escalation, Tier and Bypassed are threatgate's record of the MR.
	Escalation string `json:"escalation,omitempty"`
	Tier       string `json:"tier,omitempty"`
	Bypassed   bool   `json:"bypassed,omitempty"`
}

// thread is one escalation's conversation.
type thread struct {
	ID      string
	Summary string
	Posts   []Post
	Updated time.Time
}

// Post is one message in a thread.
type Post struct {
	At      time.Time
	From    string // "threatgate", or the person who typed
	Text    string
	Mention []string
	Kind    string // "bot", "user", "reply", "refusal", "security"
}

// The console keeps everything in memory, bounded: maxPosts posts per
// thread and in General, maxThreads threads (the least recently updated is
// dropped; its escalation's page still has the whole record), and the last
// maxKeys effect keys (a redelivery older than that is posted again).
const (
	consoleThreads = 200 // threads listed on the page: the newest escalations
	maxPosts       = 500
	maxThreads     = 1000
	maxKeys        = 20000
)

// remember records key as posted, forgetting the oldest beyond maxKeys.
func (c *Console) remember(key string) {
	if len(c.keyRing) < maxKeys {
		c.keyRing = append(c.keyRing, key)
	} else {
		delete(c.keys, c.keyRing[c.keyNext])
		c.keyRing[c.keyNext] = key
		c.keyNext = (c.keyNext + 1) % maxKeys
	}
	c.keys[key] = true
}

// addGeneral appends p to General, keeping the last maxPosts.
func (c *Console) addGeneral(ps ...Post) {
	c.general = append(c.general, ps...)
	if len(c.general) > maxPosts {
		c.general = slices.Clone(c.general[len(c.general)-maxPosts:])
	}
}

func (c *Console) init() {
	if c.threads == nil {
		c.threads = map[string]*thread{}
		c.keys = map[string]bool{}
	}
}

func (c *Console) now() time.Time {
	if c.Web != nil && c.Web.Clock != nil {
		return c.Web.Clock.Now()
	}
	return time.Now()
}

// Post records m in its escalation's thread; the summary replaces the
// thread's parent message. A message whose key was posted before is not
// posted again.
func (c *Console) Post(_ context.Context, m bot.Message) (bot.MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	ref := bot.MessageRef{Channel: "console", TS: m.Key}
	if m.Key != "" {
		if c.keys[m.Key] {
			return ref, nil
		}
		c.remember(m.Key)
	}
	if m.Escalation == "" {
		// A post of no escalation (the daily digest, the weekly report)
		// goes to the General channel.
		c.addGeneral(Post{At: c.now(), From: "threatgate", Text: m.Text, Mention: m.Mention, Kind: "bot"})
		return ref, nil
	}
	t := c.thread(m.Escalation)
	t.Updated = c.now()
	if m.Summary {
		t.Summary = m.Text
		return ref, nil
	}
	kind := "bot"
	if m.Security {
		kind = "security"
	}
	c.add(t, Post{At: t.Updated, From: "threatgate", Text: m.Text, Mention: m.Mention, Kind: kind})
	return ref, nil
}

func (c *Console) thread(id string) *thread {
	t := c.threads[id]
	if t == nil {
		if len(c.threads) >= maxThreads {
			var oldest *thread
			for _, o := range c.threads {
				if oldest == nil || o.Updated.Before(oldest.Updated) {
					oldest = o
				}
			}
			delete(c.threads, oldest.ID)
		}
		t = &thread{ID: id, Updated: c.now()}
		c.threads[id] = t
	}
	return t
}

func (c *Console) add(t *thread, p Post) {
	t.Posts = append(t.Posts, p)
	if len(t.Posts) > maxPosts {
		t.Posts = slices.Clone(t.Posts[len(t.Posts)-maxPosts:])
	}
}

// Thread returns a copy of an escalation's thread: its summary and posts.
func (c *Console) Thread(id string) (summary string, posts []Post) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if t := c.threads[id]; t != nil {
		return t.Summary, slices.Clone(t.Posts)
	}
	return "", nil
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/console" || r.URL.Path == "/console/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.Web.RenderError(w, r, http.StatusMethodNotAllowed, "Use the forms on the console page.")
			return
		}
		c.page(w, r)
	case r.URL.Path == "/console/send" && r.Method == http.MethodPost:
		c.send(w, r)
	case r.URL.Path == "/console/sample" && r.Method == http.MethodPost:
		c.sample(w, r)
	case r.URL.Path == "/console/mr" && r.Method == http.MethodPost:
		c.mr(w, r)
	default:
		c.Web.NotFound(w, r)
	}
}

// consoleView is what templates/console.html reads as .Data.
type consoleView struct {
	People   []personView
	As       string
	Threads  []threadView
	Current  *threadView
	General  []Post
	Samples  []Sample
	MRs      []mrView // the simulated GitLab's MRs; nil outside the demo
	Help     string
	Prompt   string
	Draft    string
	Escalate string // example /escalate command
}

// mrView is one MR's panel: what the simulated GitLab holds, and what a
// person can do to it there.
type mrView struct {
	SimMR
	ID        string // for element ids: the ref with every other character a dash
	HeadShort string
	GateShort string
	OnHead    bool // the gate status shown is on the current head
	Open      bool
	Closed    bool
	Current   bool // the MR of the thread shown
}

type personView struct {
	ID, Name, Groups string
}

type threadView struct {
	ID, Title, State, Tier string
	Summary                string
	Posts                  []Post
	Active                 bool
}

// person returns the policy person the form acts as: as when it exists,
// else the first person of the policy.
func (c *Console) person(pol *policies.Policy, as string) string {
	if pol.Person("id", as) != nil {
		return as
	}
	if len(pol.People) > 0 {
		return pol.People[0].ID
	}
	return ""
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	pol := c.Web.policy()
	q := r.URL.Query()
	v := consoleView{As: c.person(pol, q.Get("as")), Help: bot.HelpText("")}
	for _, p := range pol.People {
		var groups []string
		for _, g := range sortedGroups(pol) {
			if pol.InGroup(p.ID, g) {
				groups = append(groups, g)
			}
		}
		name := p.Name
		if name == "" {
			name = p.ID
		}
		v.People = append(v.People, personView{ID: p.ID, Name: name, Groups: strings.Join(groups, ", ")})
	}
	if c.Samples != nil {
		v.Samples = c.Samples.Samples()
	}
	current := q.Get("thread")
	if gl, ok := c.Samples.(SimulatedGitLab); ok {
		for _, m := range gl.MergeRequests(r.Context()) {
			v.MRs = append(v.MRs, mrView{SimMR: m, ID: elementID(m.Ref), HeadShort: bot.ShortSHA(m.Head), GateShort: bot.ShortSHA(m.GateSHA),
				OnHead: m.GateSHA == m.Head, Open: m.State == "opened", Closed: m.State == "closed", Current: current != "" && m.Escalation == current})
		}
	}
	// The newest consoleThreads escalations, through the store's index
	// (never the whole record), and the one asked for if it is older.
	page, err := c.Web.Store.ListPage(r.Context(), bot.ListQuery{Limit: consoleThreads, Now: c.now()})
	if err != nil {
		c.Web.fail(w, r, err)
		return
	}
	all := page.Items
	if current != "" && !slices.ContainsFunc(all, func(e *bot.Escalation) bool { return e.ID == current }) {
		if e, err := c.Web.Store.FindEscalation(r.Context(), current); err == nil {
			all = append(all, e)
		}
	}
	slices.SortStableFunc(all, func(a, b *bot.Escalation) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	c.mu.Lock()
	c.init()
	for _, e := range all {
		tv := threadView{ID: e.ID, Title: neutralize(fmt.Sprintf("%s!%d %s", e.Project, e.MRIID, e.Title)), State: strings.ReplaceAll(string(e.State), "_", " "), Tier: e.Tier, Active: e.ID == current}
		if t := c.threads[e.ID]; t != nil {
			tv.Summary, tv.Posts = t.Summary, inert(t.Posts)
		}
		if tv.Summary == "" {
			// Threads live in memory; after a restart the summary is
			// rendered from the escalation itself.
			tv.Summary = bot.Card(e, pol, c.now())
		}
		tv.Summary = neutralize(tv.Summary)
		v.Threads = append(v.Threads, tv)
		if tv.Active {
			cur := tv
			v.Current = &cur
		}
	}
	v.General = inert(c.general)
	c.mu.Unlock()
	if v.Current != nil {
		v.Prompt = "Reply in " + v.Current.ID + ": a command such as /approve or /threatgate status, or intake answers as lines \"field: answer\"."
	} else {
		v.Prompt = "Type a command: /escalate group/proj!12 <reason>, /threatgate backlog, /threatgate help."
	}
	c.Web.Render(w, r, "console", "Console", v)
}

// consoleURL is where the console page shows person as in thread.
func consoleURL(as, thread string) string {
	q := url.Values{}
	if as != "" {
		q.Set("as", as)
	}
	if thread != "" {
		q.Set("thread", thread)
	}
	return "/console?" + q.Encode()
}

func (c *Console) send(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.Web.RenderError(w, r, http.StatusRequestEntityTooLarge, "The message is too long: a command is at most 8 KiB.")
		return
	}
	if !c.Web.CheckCSRF(r) {
		c.Web.RenderError(w, r, http.StatusForbidden, "The form expired or did not come from this console; reload the console and try again.")
		return
	}
	pol := c.Web.policy()
	as := r.PostFormValue("as")
	if pol.Person("id", as) == nil {
		c.Web.RenderError(w, r, http.StatusBadRequest, neutralize(fmt.Sprintf("No person %q in the policy; pick someone in the console's \"acting as\" list.", as)))
		return
	}
	thread := r.PostFormValue("thread")
	if thread != "" {
		if _, err := c.Web.Store.FindEscalation(r.Context(), thread); err != nil {
			c.Web.RenderError(w, r, http.StatusNotFound, neutralize(fmt.Sprintf("No escalation %q: pick a thread from the console's list.", thread)))
			return
		}
	}
	text := strings.TrimSpace(r.PostFormValue("text"))
	if text == "" {
		http.Redirect(w, r, consoleURL(as, thread), http.StatusSeeOther)
		return
	}
	var cmd bot.Command
	var err error
	if thread != "" {
		cmd, err = bot.ParseReply(text)
	} else {
		cmd, err = bot.ParseCommand(text)
	}
	var rep bot.Reply
	if err == nil {
		rep, err = c.Engine.Handle(r.Context(), bot.Input{Kind: bot.InputCommand, Actor: bot.Identity{Person: as, Surface: "web", ExternalID: as}, Command: &cmd, Escalation: thread})
	}
	target := thread
	if rep.Escalation != "" && (thread == "" || cmd.Verb == bot.VerbEscalate) {
		target = rep.Escalation
	}
	answer, kind := rep.Text, "reply"
	if p, ok := bot.IsProblem(err); ok {
		answer, kind = p.Error(), "refusal"
	} else if err != nil {
		c.Web.fail(w, r, err)
		return
	}
	now := c.now()
	c.mu.Lock()
	c.init()
	user := Post{At: now, From: as, Text: text, Kind: "user"}
	bot := Post{At: now, From: "threatgate", Text: answer, Kind: kind}
	if target == "" {
		c.addGeneral(user, bot)
	} else {
		t := c.thread(target)
		c.add(t, user)
		c.add(t, bot)
		t.Updated = now
	}
	c.mu.Unlock()
	http.Redirect(w, r, consoleURL(as, target), http.StatusSeeOther)
}

func (c *Console) sample(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !c.Web.CheckCSRF(r) {
		c.Web.RenderError(w, r, http.StatusForbidden, "The form expired or did not come from this console; reload the console and try again.")
		return
	}
	if c.Samples == nil {
		c.Web.RenderError(w, r, http.StatusNotFound, "Sample merge requests exist only in demo mode (threatgate demo).")
		return
	}
	as := r.PostFormValue("as")
	esc, reply, err := c.Samples.OpenSample(r.Context(), r.PostFormValue("sample"))
	if err != nil {
		if p, ok := bot.IsProblem(err); ok {
			c.Web.RenderError(w, r, http.StatusBadRequest, neutralize(p.Error()))
			return
		}
		c.Web.fail(w, r, err)
		return
	}
	if reply == "" {
		reply = "That merge request needs no security review: no escalation."
	}
	// The answer goes into the thread (or the general channel), not into
	// the URL, where anyone could write a fake one into a link.
	now := c.now()
	c.mu.Lock()
	c.init()
	p := Post{At: now, From: "threatgate", Text: reply, Kind: "reply"}
	if esc == "" {
		c.addGeneral(p)
	} else {
		c.add(c.thread(esc), p)
	}
	c.mu.Unlock()
	http.Redirect(w, r, consoleURL(as, esc), http.StatusSeeOther)
}

// mr does what a person does to an MR in the simulated GitLab (form fields
// mr, action: push, merge, close, reopen) and posts what happened into the
// MR's thread (or the general channel, for an MR without an escalation).
func (c *Console) mr(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.Web.RenderError(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
		return
	}
	if !c.Web.CheckCSRF(r) {
		c.Web.RenderError(w, r, http.StatusForbidden, "The form expired or did not come from this console; reload the console and try again.")
		return
	}
	gl, ok := c.Samples.(SimulatedGitLab)
	if !ok {
		c.Web.RenderError(w, r, http.StatusNotFound, "The simulated GitLab exists only in demo mode (threatgate demo).")
		return
	}
	as := r.PostFormValue("as")
	if c.Web.policy().Person("id", as) == nil {
		as = ""
	}
	ref, action := r.PostFormValue("mr"), r.PostFormValue("action")
	if ref == "" || action == "" {
		c.Web.RenderError(w, r, http.StatusBadRequest, "Say which merge request (mr, such as group/proj!12) and what to do to it (action: push, merge, close or reopen).")
		return
	}
	esc, reply, err := gl.Act(r.Context(), ref, action)
	switch p, isProblem := bot.IsProblem(err); {
	case errors.Is(err, ErrUnknownMR):
		c.Web.RenderError(w, r, http.StatusNotFound, neutralize(fmt.Sprintf("The simulated GitLab has no merge request %q; pick one of its panels in the console.", ref)))
		return
	case isProblem:
		c.Web.RenderError(w, r, http.StatusBadRequest, neutralize(p.Error()))
		return
	case err != nil:
		c.Web.fail(w, r, err)
		return
	}
	now := c.now()
	c.mu.Lock()
	c.init()
	p := Post{At: now, From: "gitlab", Text: reply, Kind: "reply"}
	if esc == "" {
		c.addGeneral(p)
	} else {
		c.add(c.thread(esc), p)
	}
	c.mu.Unlock()
	http.Redirect(w, r, consoleURL(as, esc), http.StatusSeeOther)
}

// elementID makes s usable in an HTML id: letters and digits kept, every
// other character a dash.
func elementID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, s)
}

// inert returns a copy of posts whose texts mention nobody (see
// neutralize): every text the console shows may quote text from outside
// threatgate. Who threatgate mentions is each post's Mention list, which
// the page renders apart.
func inert(posts []Post) []Post {
	out := slices.Clone(posts)
	for i := range out {
		out[i].Text = neutralize(out[i].Text)
	}
	return out
}

func sortedGroups(pol *policies.Policy) []string {
	var out []string
	for g := range pol.Groups {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

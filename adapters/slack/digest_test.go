package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	sl "github.com/slack-go/slack"

	"github.com/threatgate/threatgate/bot"
)

// digestNow is when the sample digest is made: Thursday 2026-11-05 09:00.
var digestNow = time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC)

// sampleDigest is a digest with something in every list, as
// bot.BuildDigest makes them.
func sampleDigest() *bot.DigestData {
	d := sampleDigestData()
	for i, it := range d.Open {
		if !it.DecisionDue.IsZero() { // as bot.BuildDigest fills it in
			d.Open[i].Deadline = bot.Deadline{Has: true, Due: it.DecisionDue, Left: it.Left, Overdue: it.Overdue}
		}
	}
	for i, it := range d.Deferred { // 20h were left when it was deferred
		d.Deferred[i].Deadline = bot.Deadline{Has: true, Due: it.DeferredUntil.Add(20 * time.Hour), Left: 20 * time.Hour, Paused: true, Until: it.DeferredUntil}
	}
	return d
}

func sampleDigestData() *bot.DigestData {
	h := time.Hour
	return &bot.DigestData{
		Now: digestNow, Since: digestNow.Add(-24 * h), Dashboard: "https://threatgate.example.com/",
		HeadSeq: 46, HeadHash: "df1273c2e50311a019c8ffbe1aa54aeff1c8174bd50cd5d85df08f976afb6164",
		Cap: 4, Caps: []bot.ManualUse{{Person: "erin", Quarter: 3, Allowed: 4}},
		Open: []bot.DigestItem{
			{ID: "ESC-4", Project: "shop/api", MRIID: 4, Title: `<b>hotfix</b> & "quoted"`, MRURL: "https://gitlab.example.com/shop/api/-/merge_requests/4",
				Tier: "T2", TierName: "high", State: bot.StateInReview, Urgent: true, Opened: digestNow.Add(-2 * h), Waited: 2 * h,
				DecisionDue: digestNow.Add(10 * h), Left: 10 * h, WaitingOn: []string{"alice", "bob"}},
			{ID: "ESC-1", Project: "shop/api", MRIID: 1, Title: "session rework", Tier: "T2", TierName: "high", State: bot.StateInReview,
				Opened: digestNow.Add(-96 * h), Waited: 96 * h, DecisionDue: digestNow.Add(-72 * h), Left: -72 * h, Overdue: true, WaitingOn: []string{"alice", "bob"}},
			{ID: "ESC-2", Project: "shop/api", MRIID: 2, Tier: "T3", TierName: "critical", State: bot.StateAwaitingArtifacts,
				Opened: digestNow.Add(-25 * h), Waited: 25 * h, DecisionDue: digestNow.Add(23 * h), Left: 23 * h, WaitingOn: []string{"ann"}},
			{ID: "ESC-8", Project: "shop/web", MRIID: 8, Tier: "T2", TierName: "high", State: bot.StateIntake, Opened: digestNow.Add(-h), Waited: h, WaitingOn: []string{"erin"}},
		},
		OpenMore: 2, Urgent: 1, Overdue: 2,
		Breaches: []bot.DigestBreach{
			{ID: "ESC-7", Project: "shop/api", MRIID: 7, Tier: "T2", Due: digestNow.Add(-23 * h), DecidedAt: digestNow.Add(-18 * h)},
			{ID: "ESC-5", Project: "shop/api", MRIID: 5, Tier: "T3", Due: digestNow.Add(-13 * h), Open: true},
		},
		People: []bot.Bottleneck{{Who: "alice", Escalations: []string{"ESC-4", "ESC-1"}}, {Who: "ann", Escalations: []string{"ESC-2"}}},
		Groups: []bot.Bottleneck{{Who: "appsec", Escalations: []string{"ESC-4", "ESC-1"}}},
		Deferred: []bot.DigestItem{
			{ID: "ESC-3", Project: "shop/api", MRIID: 3, Title: "SSO for admins", Tier: "T3", State: bot.StateDeferred, DeferredUntil: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		},
		Throughput: bot.Throughput{From: digestNow.Add(-7 * 24 * h), To: digestNow, Opened: 5, Decided: 3,
			Tiers: []bot.TierTimes{{Tier: "T3", Name: "critical", Decision: bot.Spread{N: 1, Median: 50 * h, P90: 50 * h}}, {Tier: "T2", Name: "high", Decision: bot.Spread{N: 2, Median: 30 * h, P90: 40 * h}}}},
	}
}

// sampleReport is a weekly report with something in every part.
func sampleReport() *bot.WeeklyReport {
	h := time.Hour
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	return &bot.WeeklyReport{
		Year: 2026, Week: 45, From: from, To: from.AddDate(0, 0, 7), Dashboard: "https://threatgate.example.com",
		Opened: 4, Decided: 3, Approved: 2, Rejected: 1,
		Tiers: []bot.TierTimes{
			{Tier: "T3", Name: "critical", FirstResponse: bot.Spread{N: 1, Median: 2 * h, P90: 2 * h}, Decision: bot.Spread{N: 1, Median: 24 * h, P90: 24 * h}},
			{Tier: "T2", Name: "high", FirstResponse: bot.Spread{N: 3, Median: 30 * h, P90: 7 * 24 * h}},
		},
		Breaches: bot.Rate{Count: 2, Of: 4}, Deferrals: bot.Rate{Count: 1, Of: 4},
		Quarter: "2026Q4", Cap: 3,
		Manual:  []bot.ManualUse{{Person: "erin", Week: 2, Quarter: 4, Allowed: 4}, {Person: "alice", Week: 1, Quarter: 1, Allowed: 3}},
		Signals: []bot.SignalUse{{ID: "auth", Category: "access-control", Fired: 3, Decided: 3, Rejected: 1, Changed: 1}, {ID: "pii", Category: "data-exposure", Fired: 1, Decided: 1}},
	}
}

// digestGolden compares got with testdata/digest/name.json, or rewrites
// it with -update, and proves slack-go reads the file back to the same
// blocks.
func digestGolden(t *testing.T, name string, bs []sl.Block) {
	t.Helper()
	got := marshal(t, bs)
	path := filepath.Join("testdata", "digest", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v (run go test ./adapters/slack -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: blocks differ from %s (go test ./adapters/slack -update rewrites it)\n got %s\nwant %s", name, path, got, want)
	}
	var back sl.Blocks
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatalf("%s: slack-go cannot read its golden back: %v", name, err)
	}
	if again := marshal(t, back.BlockSet); !bytes.Equal(again, want) {
		t.Errorf("%s: slack-go reads the golden back differently:\n%s", name, again)
	}
}

// TestRenderDigestGolden: the digest, an empty one and the weekly report
// in Block Kit are their golden files in testdata/digest.
func TestRenderDigestGolden(t *testing.T) {
	empty := &bot.DigestData{Now: digestNow, Since: digestNow.Add(-24 * time.Hour)}
	for name, bs := range map[string][]sl.Block{
		"digest":       RenderDigest(sampleDigest(), users),
		"digest_empty": RenderDigest(empty, users),
		"report":       RenderReport(sampleReport()),
		"report_empty": RenderReport(&bot.WeeklyReport{Year: 2026, Week: 45, From: sampleReport().From, To: sampleReport().To, Quarter: "2026Q4"}),
	} {
		t.Run(name, func(t *testing.T) {
			checkLimits(t, bs)
			digestGolden(t, name, bs)
		})
	}
	if got, want := DigestText(sampleDigest()), "Security review digest: 6 open (1 urgent, 2 overdue), 1 deferred; 2 deadlines missed since the last digest."; got != want {
		t.Errorf("DigestText = %q, want %q", got, want)
	}
	if got, want := ReportText(sampleReport()), "Weekly security review report 2026-W45: 4 opened, 3 decided, 50% SLA breaches."; got != want {
		t.Errorf("ReportText = %q, want %q", got, want)
	}
	if RenderDigest(nil, users) != nil || RenderReport(nil) != nil || DigestText(nil) != "" || ReportText(nil) != "" {
		t.Error("nil renders as something")
	}
	all := strings.Join(strs(t, RenderDigest(sampleDigest(), users)), "\n")
	for _, want := range []string{"<@U01ALICE>, <@U02BOB>", "&lt;b&gt;hotfix&lt;/b&gt; &amp; \"quoted\"", "<https://threatgate.example.com/|Open the dashboard>",
		"<https://gitlab.example.com/shop/api/-/merge_requests/4|shop/api!4>", "…and 2 more open"} {
		if !strings.Contains(all, want) {
			t.Errorf("digest blocks lack %q", want)
		}
	}
	if r := strings.Join(strs(t, RenderReport(sampleReport())), "\n"); !strings.Contains(r, "<https://threatgate.example.com/reports/weekly?week=2026-W45|See it on the dashboard>") {
		t.Errorf("report blocks do not link the report on the dashboard:\n%s", r)
	}
}

// TestDigestHostileTextIsInert: with hostile text in every string of the
// digest and the report (titles, URLs, names, ids, the dashboard's URL),
// nothing reaches Slack as a mention, broadcast, channel or link but the
// mentions threatgate makes of the people it maps.
func TestDigestHostileTextIsInert(t *testing.T) {
	d := sampleDigest()
	poison(reflect.ValueOf(d), nil)
	for i := range d.Open {
		d.Open[i].WaitingOn = append(d.Open[i].WaitingOn, "alice", "mallory", "eve")
	}
	bs := RenderDigest(d, hostileUsers)
	checkLimits(t, bs)
	all := strs(t, bs)
	for i, s := range all {
		inert(t, "digest block string "+strconv.Itoa(i), s)
	}
	if !strings.Contains(strings.Join(all, "\n"), "<@U01ALICE>, mallory, eve") {
		t.Error("the waiting line does not mention alice and name mallory and eve plainly")
	}
	inert(t, "DigestText", DigestText(d))

	r := sampleReport()
	poison(reflect.ValueOf(r), nil)
	bs = RenderReport(r)
	checkLimits(t, bs)
	for i, s := range strs(t, bs) {
		inert(t, "report block string "+strconv.Itoa(i), s)
	}
	inert(t, "ReportText", ReportText(r))

	// A dashboard URL that would end the link token is not linked.
	for _, u := range []string{"https://x.example/|<!here>", "javascript:alert(1)", "https://x.example/ a", "https://x.example/>"} {
		if got := dashboardLink(u, "x"); got != "" {
			t.Errorf("dashboardLink(%q) = %q, want none", u, got)
		}
	}
}

// TestDigestLimits: many long items still make a message Slack accepts.
func TestDigestLimits(t *testing.T) {
	long := strings.Repeat("<!here> & long text ", 400)
	d := sampleDigest()
	for i := range bot.DigestLimit {
		d.Open = append(d.Open, bot.DigestItem{ID: "ESC-" + strconv.Itoa(100+i), Project: long, Title: long, Tier: long, State: bot.StateInReview,
			DecisionDue: digestNow, WaitingOn: []string{long, long, long, long, long, long, long}})
		d.Breaches = append(d.Breaches, bot.DigestBreach{ID: long, Project: long, Tier: long, Due: digestNow})
		d.Deferred = append(d.Deferred, bot.DigestItem{ID: long, Project: long, Title: long, DeferredUntil: digestNow})
	}
	for range 5 {
		d.People = append(d.People, bot.Bottleneck{Who: long, Escalations: strings.Fields(strings.Repeat("ESC-1 ", 50))})
	}
	checkLimits(t, RenderDigest(d, users))
	r := sampleReport()
	for range bot.ReportSignals {
		r.Signals = append(r.Signals, bot.SignalUse{ID: long, Category: long})
		r.Tiers = append(r.Tiers, bot.TierTimes{Tier: long, Name: long})
	}
	for range bot.ReportPeople {
		r.Manual = append(r.Manual, bot.ManualUse{Person: long})
	}
	checkLimits(t, RenderReport(r))
}

// TestSinkPostsTheDigest: a digest effect is one top-level message in the
// main channel, carrying its effect id; a retry after an uncertain
// failure finds it instead of posting it again. The weekly report goes
// the same way.
func TestSinkPostsTheDigest(t *testing.T) {
	r := newSinkRig(t)
	ctx := context.Background()
	e := bot.Effect{ID: "global/1/000", Kind: bot.EffectDigest, Sink: SinkName, Digest: sampleDigest()}
	r.fake.fail(sinkFail{Method: "chat.postMessage", Status: 500, Post: true})
	if _, err := r.app.Deliver(ctx, e); err == nil {
		t.Fatal("a 500 was not an error")
	}
	ref, err := r.app.Deliver(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	msgs := r.fake.in(sinkMain)
	if len(msgs) != 1 || msgs[0].ThreadTS != "" || ref != (bot.MessageRef{Channel: sinkMain, TS: msgs[0].TS}) {
		t.Fatalf("messages %+v, ref %+v: want the digest once, at the top of %s", msgs, ref, sinkMain)
	}
	posts := r.fake.of("chat.postMessage")
	wantMeta(t, posts[0], e.ID, sinkPartThread)
	if b := sinkBlocks(t, posts[0]); !strings.Contains(b, "Security review digest") || !strings.Contains(b, "<@U01ALICE>") {
		t.Errorf("the post is not the digest with its mentions: %s", b)
	}
	if text := posts[0].Form.Get("text"); !strings.HasPrefix(text, "Security review digest: ") {
		t.Errorf("text = %q", text)
	}

	rep := bot.Effect{ID: "global/2/000", Kind: bot.EffectDigest, Sink: SinkName, Report: sampleReport()}
	if _, err := r.app.Deliver(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if msgs := r.fake.in(sinkMain); len(msgs) != 2 || msgs[1].ThreadTS != "" || !strings.Contains(msgs[1].Blocks, "Weekly security review report") {
		t.Errorf("the report was not posted at the top of %s: %+v", sinkMain, msgs)
	}
}

// TestEngineDigestReachesSlack: Engine.Digest through the outbox and the
// dispatcher lands in the main channel once, however often it is asked
// for that day.
func TestEngineDigestReachesSlack(t *testing.T) {
	r := newSinkRig(t)
	ctx := context.Background()
	d := bot.NewDispatcher(r.DB, nil, nil, nil, r.Clock, nil)
	d.AddSink(SinkName, r.app)
	d.Threads = r.DB
	now := r.Clock.Now()
	for range 2 {
		if err := r.Engine.Digest(ctx, now, time.Time{}, "https://threatgate.example.com/"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.DeliverDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	msgs := r.fake.in(sinkMain)
	if len(msgs) != 1 || !strings.Contains(msgs[0].Blocks, "The backlog is empty") || !strings.Contains(msgs[0].Blocks, "Open the dashboard") {
		t.Errorf("main channel: %+v; want one empty digest with the dashboard's link", msgs)
	}
}

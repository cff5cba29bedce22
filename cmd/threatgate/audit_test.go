package main

// audit verify, backup, GET /api/audit/head and GET /admin/backup over
// real bbolt files: a log tampered with through bbolt directly (the store
// closed), rewritten consistently and caught by anchors, the digest's
// anchor, a copy taken while writes go on that opens, verifies and
// serves as the store restored.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/threatgate/threatgate/adapters/slack"
	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/internal/testrig"
	"github.com/threatgate/threatgate/policies"
	"github.com/threatgate/threatgate/store"
)

var auditT0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// commitEvents commits n events about no escalation (cap overrides), one
// commit each.
func commitEvents(t testing.TB, db *store.DB, n int) {
	t.Helper()
	for i := range n {
		at := auditT0.Add(time.Duration(i) * time.Minute)
		ev := bot.Event{Kind: bot.EventCapOverridden, Actor: "lead", At: at, Data: bot.EventData{Person: "ann", Count: i + 1}}
		if _, err := db.Commit(context.Background(), &bot.Commit{Events: []bot.Event{ev}, At: at}); err != nil {
			t.Fatalf("commit event %d: %v", i+1, err)
		}
	}
}

// auditLog makes a store with n events in a new data directory and
// closes it. hashes[i] is the hash of event i+1.
func auditLog(t *testing.T, n int) (dir string, hashes []string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil { // as Open makes one, so it does not warn
		t.Fatal(err)
	}
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	commitEvents(t, db, n)
	if err := db.AllEvents(context.Background(), func(ev bot.Event) error { hashes = append(hashes, ev.Hash); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, hashes
}

// tamperLog opens the closed store's bbolt file directly and runs fn on its
// events and meta buckets in one transaction.
func tamperLog(t *testing.T, dir string, fn func(events, meta *bolt.Bucket)) {
	t.Helper()
	b, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Update(func(tx *bolt.Tx) error {
		fn(tx.Bucket([]byte("events")), tx.Bucket([]byte("meta")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// decodeRecord reads the event stored under seq.
func decodeRecord(t *testing.T, events *bolt.Bucket, seq uint64) bot.Event {
	t.Helper()
	var ev bot.Event
	js, err := store.RecordJSON(events.Get(seqKey(seq)))
	if err != nil {
		t.Fatalf("event %d: %v", seq, err)
	}
	if err := json.Unmarshal(js, &ev); err != nil {
		t.Fatalf("event %d: %v", seq, err)
	}
	return ev
}

// forgeRecord seals ev as the store would (docs in store/doc.go: the hash is
// SHA-256 of the prev hash and the event's JSON without its hash; the
// record is that JSON with the hash member appended), as someone
// rewriting the file would, and returns the record and the hash.
func forgeRecord(t *testing.T, ev bot.Event) ([]byte, string) {
	t.Helper()
	ev.Hash = ""
	canon, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte(ev.PrevHash), canon...))
	hash := hex.EncodeToString(sum[:])
	rec := append(bytes.Clone(canon[:len(canon)-1]), []byte(`,"hash":"`+hash+`"}`)...)
	return rec, hash
}

// rewriteFrom changes event from (its actor) and seals it and every event
// after it again, moving the chain head: a rewrite that leaves every link
// whole. It returns the new hashes, by seq.
func rewriteFrom(t *testing.T, events, meta *bolt.Bucket, from, last uint64) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	prev := decodeRecord(t, events, from-1).Hash
	for seq := from; seq <= last; seq++ {
		ev := decodeRecord(t, events, seq)
		if seq == from {
			ev.Actor = "mallory"
		}
		ev.PrevHash = prev
		rec, hash := forgeRecord(t, ev)
		if err := events.Put(seqKey(seq), rec); err != nil {
			t.Fatal(err)
		}
		out[seq], prev = hash, hash
	}
	if err := meta.Put([]byte("head_seq"), seqKey(last)); err != nil {
		t.Fatal(err)
	}
	if err := meta.Put([]byte("head_hash"), []byte(prev)); err != nil {
		t.Fatal(err)
	}
	return out
}

// hashPrefix is how messages show a hash.
func hashPrefix(h string) string { return h[:12] + "…" }

// TestAuditVerifyCatchesTampering: each way of changing the log through
// the file is caught, naming the first record that is wrong and how.
func TestAuditVerifyCatchesTampering(t *testing.T) {
	const n = 6
	for _, tt := range []struct {
		name string
		edit func(t *testing.T, events, meta *bolt.Bucket, h []string) string // the message expected
	}{
		{"a record's bytes edited", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			rec, err := store.RecordJSON(events.Get(seqKey(3)))
			if err != nil {
				t.Fatal(err)
			}
			changed := bytes.Replace(rec, []byte(`"actor":"lead"`), []byte(`"actor":"mallory"`), 1)
			if bytes.Equal(changed, rec) {
				t.Fatalf("event 3 has no actor lead: %s", rec)
			}
			events.Put(seqKey(3), changed)
			canon := bytes.Replace(changed, []byte(`,"hash":"`+h[2]+`"`), nil, 1)
			sum := sha256.Sum256(append([]byte(h[1]), canon...))
			return "event 3: hash mismatch: the record carries " + hashPrefix(h[2]) + ", its content hashes to " + hashPrefix(hex.EncodeToString(sum[:])) + ": the record was changed"
		}},
		{"a changed record sealed again", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			ev := decodeRecord(t, events, 3)
			ev.Actor = "mallory"
			rec, hash := forgeRecord(t, ev)
			events.Put(seqKey(3), rec)
			return "event 4: broken prev link: its prev_hash is " + hashPrefix(h[2]) + ", but event 3 hashes to " + hashPrefix(hash)
		}},
		{"one deleted", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			events.Delete(seqKey(3))
			return "event 4: seq gap: it follows event 2; event 3 is missing: removed"
		}},
		{"two deleted", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			events.Delete(seqKey(3))
			events.Delete(seqKey(4))
			return "event 5: seq gap: it follows event 2; events 3 to 4 are missing: removed"
		}},
		{"the last deleted", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			events.Delete(seqKey(n))
			return "event 6: seq gap: the log ends at event 5, but the chain head recorded in the store is event 6: removed from the end"
		}},
		{"one inserted", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			// Events 3 to 6 move up one; a forged event 3, well chained to
			// event 2, takes their place; the head follows.
			for seq := uint64(n); seq >= 3; seq-- {
				events.Put(seqKey(seq+1), bytes.Clone(events.Get(seqKey(seq))))
			}
			rec, _ := forgeRecord(t, bot.Event{Seq: 3, PrevHash: h[1], Kind: bot.EventCapOverridden, Actor: "mallory", At: auditT0, Data: bot.EventData{Person: "mallory", Count: 99}})
			events.Put(seqKey(3), rec)
			meta.Put([]byte("head_seq"), seqKey(n+1))
			return "event 4: seq out of order: the record stored as event 4 says it is event 3: records were swapped, moved or inserted"
		}},
		{"two swapped", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			r3, r4 := bytes.Clone(events.Get(seqKey(3))), bytes.Clone(events.Get(seqKey(4)))
			events.Put(seqKey(3), r4)
			events.Put(seqKey(4), r3)
			return "event 3: seq out of order: the record stored as event 3 says it is event 4"
		}},
		{"one appended outside the store", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			rec, _ := forgeRecord(t, bot.Event{Seq: n + 1, PrevHash: h[n-1], Kind: bot.EventCapOverridden, Actor: "mallory", At: auditT0})
			events.Put(seqKey(n+1), rec)
			return "event 7: seq out of order: the log goes on to event 7 after the chain head recorded in the store, event 6: appended outside the store"
		}},
		{"a record that is no longer an event", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			events.Put(seqKey(2), []byte("gone"))
			return "event 2: hash mismatch: the record cannot be read (damaged packed record: neither JSON nor a packed record (first byte 0x67)): it was changed"
		}},
		{"a JSON record without its hash", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			events.Put(seqKey(2), []byte(`{"seq":2}`))
			return "event 2: hash mismatch: the record does not end with a hash: it was changed"
		}},
		{"a packed record damaged", func(t *testing.T, events, meta *bolt.Bucket, h []string) string {
			rec := bytes.Clone(events.Get(seqKey(2)))
			rec[len(rec)-1] ^= 0xff
			events.Put(seqKey(2), rec)
			return "event 2: hash mismatch: the record cannot be read (damaged packed record"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, h := auditLog(t, n)
			if code, stdout, stderr := runCLI(t, "", "audit", "verify", "--data", dir); code != exitOK || !strings.Contains(stdout, "6 events") {
				t.Fatalf("before: exit %d\n%s%s", code, stdout, stderr)
			}
			var want string
			tamperLog(t, dir, func(events, meta *bolt.Bucket) { want = tt.edit(t, events, meta, h) })
			code, stdout, stderr := runCLI(t, "", "audit", "verify", "--data", dir)
			if code != exitFinding {
				t.Errorf("exit %d, want 1; stdout %q", code, stdout)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr:\n%s\nwant %q", stderr, want)
			}
			if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.HasPrefix(stderr, "threatgate: the audit chain is broken: ") {
				t.Errorf("stderr is %d lines, want one naming the break:\n%s", lines, stderr)
			}
		})
	}
}

// TestAuditVerifyAnchors: a rewrite that leaves every link whole passes
// the walk alone; a head seen earlier (--expect-head) and anchors kept
// elsewhere (--anchors) catch it, and say between which events it is.
func TestAuditVerifyAnchors(t *testing.T) {
	dir, h := auditLog(t, 6)
	code, stdout, stderr := runCLI(t, "", "audit", "verify", "--data", dir, "--expect-head", strings.ToUpper(h[3]))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"6 events: every hash and every link to the event before checked\n",
		"head: seq 6, hash " + h[5] + "\n",
		"anchor --expect-head: holds (event 4)\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// audit verify's head line is an anchor as it is.
	headLine := regexp.MustCompile(`(?m)^head: .*$`).FindString(stdout)
	anchors := writeFile(t, "anchors.txt", strings.Join([]string{
		"# kept by the auditors",
		"2 " + h[1],
		"",
		"Audit chain head: seq 4, hash " + h[3] + " (keep this as an anchor)",
		"Audit chain head: seq 5, hash `" + h[4] + "` (keep this as an anchor)",
		headLine,
	}, "\n"))
	if code, stdout, stderr := runCLI(t, "", "audit", "verify", "--data", dir, "--anchors", anchors); code != exitOK || strings.Count(stdout, ": holds") != 4 {
		t.Fatalf("untouched log against its anchors: exit %d\n%s%s", code, stdout, stderr)
	}

	var rewritten map[uint64]string
	tamperLog(t, dir, func(events, meta *bolt.Bucket) { rewritten = rewriteFrom(t, events, meta, 3, 6) })
	code, stdout, stderr = runCLI(t, "", "audit", "verify", "--data", dir)
	if code != exitOK || !strings.Contains(stdout, "head: seq 6, hash "+rewritten[6]) {
		t.Fatalf("a consistent rewrite, without anchors: exit %d, want 0 (only anchors show it)\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "", "audit", "verify", "--data", dir, "--expect-head", h[5])
	if want := "threatgate: anchor --expect-head: no event hashes to " + hashPrefix(h[5]) + ": the log was rewritten after that head was seen, or it is another log\n"; code != exitFinding || stderr != want {
		t.Errorf("--expect-head the old head: exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
	code, stdout, stderr = runCLI(t, "", "audit", "verify", "--data", dir, "--anchors", anchors)
	if code != exitFinding {
		t.Errorf("anchors after a rewrite: exit %d, want 1", code)
	}
	if want := "anchor " + anchors + ":2: holds (event 2)\n"; !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	for _, want := range []string{
		"threatgate: anchor " + anchors + ":4: event 4 hashes to " + hashPrefix(rewritten[4]) + ", not " + hashPrefix(h[3]) + " as anchored: the log was rewritten after event 2 (whose anchor holds) and at or before event 4\n",
		"threatgate: anchor " + anchors + ":5: event 5 hashes to " + hashPrefix(rewritten[5]),
		"threatgate: anchor " + anchors + ":6: event 6 hashes to " + hashPrefix(rewritten[6]),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Cut short, the head moved back: the walk is content, an anchor past
	// the end is not.
	dir, h = auditLog(t, 6)
	tamperLog(t, dir, func(events, meta *bolt.Bucket) {
		events.Delete(seqKey(5))
		events.Delete(seqKey(6))
		meta.Put([]byte("head_seq"), seqKey(4))
		meta.Put([]byte("head_hash"), []byte(h[3]))
	})
	if code, _, stderr := runCLI(t, "", "audit", "verify", "--data", dir); code != exitOK {
		t.Fatalf("a log cut short with its head moved: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "audit", "verify", "--data", dir, "--anchors", writeFile(t, "a", "6 "+h[5]+"\n"))
	if want := "the anchor names event 6, but the log ends at event 4: events were removed from its end"; code != exitFinding || !strings.Contains(stderr, want) {
		t.Errorf("an anchor past the end: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

func TestAuditVerifyInput(t *testing.T) {
	dir, _ := auditLog(t, 2)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit"}, exitUsage, "audit needs a subcommand: verify"},
		{[]string{"audit", "check"}, exitUsage, `unknown audit subcommand "check"`},
		{[]string{"audit", "verify", "--data", dir, "extra"}, exitUsage, `takes no arguments, got "extra"`},
		{[]string{"audit", "verify", "--data", dir, "--expect-head", "abc123"}, exitUsage, `--expect-head: want the 64 hex digits of a chain hash, got "abc123"`},
		{[]string{"audit", "verify", "--data", t.TempDir()}, exitFinding, "no store in"},
		{[]string{"audit", "verify", "--data", dir, "--anchors", filepath.Join(t.TempDir(), "none.txt")}, exitFinding, "none.txt: cannot read the anchors: no such file or directory"},
		{[]string{"audit", "verify", "--data", dir, "--anchors", writeFile(t, "bad.txt", "1 abc\n0 "+strings.Repeat("a", 64)+"\n")}, exitFinding,
			"bad.txt:1:1: want \"SEQ HASH\" (the hash in 64 hex digits) or a digest's \"Audit chain head: seq N, hash H\" line, got \"1 abc\"\n"},
		{[]string{"audit", "verify", "--data", dir, "--anchors", writeFile(t, "bad.txt", "1 abc\n0 "+strings.Repeat("a", 64)+"\n")}, exitFinding,
			"bad.txt:2:1: want an event's seq, 1 or more, got \"0\""},
		{[]string{"audit", "verify", "--data", dir, "--anchors", writeFile(t, "empty.txt", "# nothing\n")}, exitFinding, "empty.txt: no anchors in it"},
		{[]string{"backup", "--data", dir}, exitUsage, "backup needs --out FILE"},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("threatgate %q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
	// A directory without a store is left as it was.
	empty := t.TempDir()
	runCLI(t, "", "audit", "verify", "--data", empty)
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("audit verify on an empty directory left %v in it", entries)
	}
}

func FuzzParseAnchors(f *testing.F) {
	h := strings.Repeat("ab", 32)
	for _, seed := range []string{
		"1 " + h,
		"# c\n\n42 " + strings.ToUpper(h) + "\n",
		"Audit chain head: seq 7, hash " + h + " (keep this as an anchor)",
		"Audit chain head: seq 7, hash `" + h + "`",
		"head: seq 18446744073709551615, hash " + h,
		"head: seq 18446744073709551616, hash " + h,
		"0 " + h,
		"1 " + h[:63],
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseAnchors("a.txt", strings.NewReader(in))
		if err != nil {
			if len(policies.Problems(err)) == 0 {
				t.Fatalf("error %v is not a Problem", err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("no anchors and no problem")
		}
		for _, a := range got {
			if _, ok := parseHash(a.Hash); !ok || a.Hash != strings.ToLower(a.Hash) || a.Seq == 0 || !strings.HasPrefix(a.Source, "a.txt:") {
				t.Fatalf("anchor %+v", a)
			}
		}
	})
}

// TestDigestCarriesTheHead: the digest reads the head from the store and
// every surface shows it whole; pasted into an anchors file from either,
// it holds.
func TestDigestCarriesTheHead(t *testing.T) {
	r := testrig.NewRig(t, smallPolicy)
	ctx := context.Background()
	mr := &policies.MergeRequest{IID: 12, PathWithNamespace: "shop/api", Title: "Rework sessions", TargetBranch: "main", SHA: "aaa111",
		UpdatedAt: r.Clock.Now(), Author: policies.User{Username: "ann"}, Changes: []policies.Change{{OldPath: "internal/auth/session.go", NewPath: "internal/auth/session.go"}}}
	if _, err := r.Engine.Handle(ctx, bot.Input{Kind: bot.InputMR, MR: &bot.MRInput{Action: bot.MROpen, MR: mr}}); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := r.DB.HeadOf(ctx)
	if err != nil || seq == 0 || len(hash) != 64 {
		t.Fatalf("HeadOf = %d, %q, %v; want the head of a log with events", seq, hash, err)
	}
	r.Clock.Advance(time.Hour)
	if err := r.Engine.Digest(ctx, r.Clock.Now(), time.Time{}, ""); err != nil {
		t.Fatal(err)
	}
	recs, err := r.DB.PendingEffects(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var d *bot.DigestData
	for _, rec := range recs {
		if rec.Effect.Kind == bot.EffectDigest {
			d = rec.Effect.Digest
		}
	}
	if d == nil || d.HeadSeq != seq || d.HeadHash != hash {
		t.Fatalf("digest = %+v; want head %d %s", d, seq, hash)
	}
	text := bot.RenderDigestText(d)
	want := fmt.Sprintf("\nAudit chain head: seq %d, hash %s (keep this as an anchor)", seq, hash)
	if !strings.Contains(text, want) {
		t.Errorf("console digest lacks %q:\n%s", want, text)
	}
	blocks, err := json.Marshal(slack.RenderDigest(d, nil))
	if err != nil {
		t.Fatal(err)
	}
	slackLine := fmt.Sprintf("Audit chain head: seq %d, hash `%s` (keep this as an anchor)", seq, hash)
	if !strings.Contains(string(blocks), slackLine) {
		t.Errorf("Slack digest lacks %q:\n%s", slackLine, blocks)
	}
	anchors, err := parseAnchors("chat", strings.NewReader(strings.TrimSpace(want)+"\n"+slackLine))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.DB.Audit(ctx, anchors)
	if err != nil || len(res.Held) != 2 {
		t.Errorf("Audit(the digest's anchors) = %+v, %v; want both held", res, err)
	}
}

// TestAuditAndBackupPointToTheServer: while a server holds the data
// directory, audit verify and backup say so in one line and name the
// HTTP form.
func TestAuditAndBackupPointToTheServer(t *testing.T) {
	l := startServer(t, "", nil)
	cfg := writeFile(t, "tg.yaml", fmt.Sprintf("data_dir: %s\nweb:\n  public_url: https://tg.example.com\n", l.s.cfg.DataDir))
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"audit", "verify", "--config", cfg}, []string{"https://tg.example.com/admin/backup", "https://tg.example.com/api/audit/head"}},
		{[]string{"backup", "--config", cfg, "--out", filepath.Join(t.TempDir(), "b.db")}, []string{"take the copy from it: GET https://tg.example.com/admin/backup (dashboard token)"}},
	} {
		code, stdout, stderr := runCLI(t, "", tt.args...)
		if code != exitFinding || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("threatgate %q: exit %d, stdout %q, stderr %q; want 1 and one line", tt.args, code, stdout, stderr)
		}
		for _, w := range append(tt.want, l.s.cfg.DataDir+" is held by a running threatgate (bbolt allows one process)") {
			if !strings.Contains(stderr, w) {
				t.Errorf("threatgate %q: stderr %q lacks %q", tt.args, stderr, w)
			}
		}
	}
}

// TestBackupCommand: a copy of a stopped store, never over an existing
// file unless --force, that audit verify accepts as a data directory.
func TestBackupCommand(t *testing.T) {
	dir, h := auditLog(t, 3)
	out := filepath.Join(t.TempDir(), "backup.db")
	code, stdout, stderr := runCLI(t, "", "backup", "--data", dir, "--out", out)
	if code != exitOK {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	if want := "audit chain head: seq 3, hash " + h[2] + "\n"; !strings.Contains(stdout, want) || !strings.Contains(stdout, "<data_dir>/threatgate.db") {
		t.Errorf("stdout %q lacks %q and how to restore", stdout, want)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the copy's mode: %v, %v; want 0600", fi.Mode(), err)
	}
	db, err := store.Open(dir, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	commitEvents(t, db, 2)
	db.Close()

	code, _, stderr = runCLI(t, "", "backup", "--data", dir, "--out", out)
	if code != exitFinding || !strings.Contains(stderr, "--out: "+out+" exists; --force replaces it") {
		t.Errorf("backup over a file: exit %d, stderr %q; want 1, refused", code, stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(again, first) {
		t.Error("a refused backup changed the file")
	}
	if code, _, stderr := runCLI(t, "", "backup", "--data", dir, "--out", out, "--force"); code != exitOK {
		t.Fatalf("backup --force: exit %d: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("the backup's directory holds %v, want the copy alone", entries)
	}

	restored := t.TempDir()
	if err := os.Rename(out, filepath.Join(restored, store.FileName)); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "", "audit", "verify", "--data", restored); code != exitOK || !strings.Contains(stdout, "5 events") {
		t.Errorf("audit verify on the copy: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestAuditHeadAndBackupOverHTTP: both need the dashboard token; the head
// is the store's; a backup taken while writes go on opens, verifies, and
// is the store restored: a server started on it serves the same head.
func TestAuditHeadAndBackupOverHTTP(t *testing.T) {
	l := startServer(t, "web:\n  dashboard_token_env: TG_DASH\n", map[string]string{"TG_DASH": dashboardToken})
	ctx := context.Background()
	commitEvents(t, l.s.db, 5)
	auth := map[string]string{"Authorization": "Bearer " + dashboardToken}
	for _, path := range []string{"/api/audit/head", "/admin/backup"} {
		if resp, body := l.do(http.MethodGet, path, "", nil, ""); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "seq") {
			t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
		}
	}
	resp, body := l.do(http.MethodGet, "/api/audit/head", "", auth, "")
	var head auditHead
	if err := json.Unmarshal([]byte(body), &head); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/audit/head: %d %q (%v)", resp.StatusCode, body, err)
	}
	seq, hash, _ := l.s.db.HeadOf(ctx)
	if head.Seq != 5 || head.Seq != seq || head.Hash != hash {
		t.Errorf("GET /api/audit/head = %+v, want seq 5 and the store's head %d %s", head, seq, hash)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}

	// Writes go on while the copy streams.
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			at := auditT0.Add(time.Duration(n) * time.Second)
			if _, err := l.s.db.Commit(ctx, &bot.Commit{Events: []bot.Event{{Kind: bot.EventCapOverridden, Actor: "lead", At: at, Data: bot.EventData{Person: "bob", Count: n}}}, At: at}); err != nil {
				t.Errorf("commit during the backup: %v", err)
				return
			}
			n++
		}
	}()
	resp, body = l.do(http.MethodGet, "/admin/backup", "", auth, "")
	close(stop)
	written := <-done
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/backup: %d %s", resp.StatusCode, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename=threatgate-\d{8}-\d{6}\.db$`).MatchString(cd) {
		t.Errorf("Content-Disposition = %q", cd)
	}
	if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length = %s, body %d bytes", cl, len(body))
	}
	restored := t.TempDir()
	if err := os.WriteFile(filepath.Join(restored, store.FileName), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(restored, store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Audit(ctx, nil)
	if err != nil {
		t.Fatalf("the copy: %v", err)
	}
	if got := resp.Header.Get("X-Threatgate-Audit-Head"); got != fmt.Sprintf("%d %s", res.HeadSeq, res.HeadHash) {
		t.Errorf("X-Threatgate-Audit-Head = %q, the copy's head is %d %s", got, res.HeadSeq, res.HeadHash)
	}
	if res.Events < 5 || res.Events > 5+written {
		t.Errorf("the copy has %d events; want 5 to %d", res.Events, 5+written)
	}
	t.Logf("%d commits ran with the backup; the copy has %d events", written, res.Events)

	// Restoring is starting with the copy as the data directory's file.
	cfg := DefaultConfig()
	cfg.DataDir = restored
	pol, err := policies.Default()
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, Secrets{}, pol, db, wallClock{}, slog.New(slog.DiscardHandler), extras{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/audit/head", nil)
	req.Host = "127.0.0.1"
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if err := json.Unmarshal(rec.Body.Bytes(), &head); err != nil || head.Seq != res.HeadSeq || head.Hash != res.HeadHash {
		t.Errorf("the restored server's head: %d %s (%v), want the copy's %d %s", rec.Code, rec.Body, err, res.HeadSeq, res.HeadHash)
	}
	db.Close()
}

// TestAdminBackupHostCheck: without a dashboard token, GET /admin/backup
// and GET /api/audit/head answer loopback and the configured names only,
// as the pages do.
func TestAdminBackupHostCheck(t *testing.T) {
	l := startServer(t, "web:\n  public_url: https://tg.example.com\n", nil)
	for _, path := range []string{"/admin/backup", "/api/audit/head"} {
		for host, want := range map[string]int{"127.0.0.1:8080": http.StatusOK, "tg.example.com": http.StatusOK, "attacker.example": http.StatusMisdirectedRequest} {
			if resp, _ := l.do(http.MethodGet, path, host, nil, ""); resp.StatusCode != want {
				t.Errorf("GET %s with Host %s: %d, want %d", path, host, resp.StatusCode, want)
			}
		}
	}
}

// blockingWriter is a ResponseWriter whose first Write signals started
// and waits for release: a client reading a backup slowly.
type blockingWriter struct {
	h        http.Header
	started  chan struct{}
	release  chan struct{}
	once     sync.Once
	code     int
	received int
}

func (w *blockingWriter) Header() http.Header  { return w.h }
func (w *blockingWriter) WriteHeader(code int) { w.code = code }
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.started); <-w.release })
	w.received += len(b)
	return len(b), nil
}

// TestAdminBackupOneAtATime: while one copy is being sent, a second
// GET /admin/backup is refused with 429 and Retry-After, and spools
// nothing; once the first is done, a new one is served.
func TestAdminBackupOneAtATime(t *testing.T) {
	l := startServer(t, "web:\n  dashboard_token_env: TG_DASH\n", map[string]string{"TG_DASH": dashboardToken})
	commitEvents(t, l.s.db, 3)
	first := &blockingWriter{h: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.s.backupHandler(first, httptest.NewRequest(http.MethodGet, "/admin/backup", nil))
	}()
	select {
	case <-first.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first backup never started sending")
	}
	spools := func() int {
		m, _ := filepath.Glob(filepath.Join(l.s.cfg.DataDir, ".backup-*.tmp"))
		return len(m)
	}
	if n := spools(); n != 1 {
		t.Fatalf("%d spool files while one backup is sent, want 1", n)
	}
	second := httptest.NewRecorder()
	l.s.backupHandler(second, httptest.NewRequest(http.MethodGet, "/admin/backup", nil))
	if second.Code != http.StatusTooManyRequests || second.Header().Get("Retry-After") == "" {
		t.Errorf("a second concurrent backup: %d (Retry-After %q), want 429 with Retry-After", second.Code, second.Header().Get("Retry-After"))
	}
	if n := spools(); n != 1 {
		t.Errorf("%d spool files after the refused backup, want 1", n)
	}
	close(first.release)
	<-done
	if first.code != 0 && first.code != http.StatusOK || first.received == 0 {
		t.Errorf("the first backup: code %d, %d bytes", first.code, first.received)
	}
	third := httptest.NewRecorder()
	l.s.backupHandler(third, httptest.NewRequest(http.MethodGet, "/admin/backup", nil))
	if third.Code != http.StatusOK || third.Body.Len() == 0 {
		t.Errorf("a backup after the first finished: %d, %d bytes", third.Code, third.Body.Len())
	}
}

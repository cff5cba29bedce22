package gitlab

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/bot"
	"github.com/threatgate/threatgate/bot/bottest"
	"github.com/threatgate/threatgate/store"
)

const testSecret = bot.Secret("s3cret-webhook-token")

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.NoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Verify(context.Background()); err != nil {
			t.Errorf("audit chain: %v", err)
		}
		db.Close()
	})
	return db
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(h http.Handler, kind, token, uuid string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/gitlab", bytes.NewReader(body))
	if kind != "" {
		r.Header.Set("X-Gitlab-Event", kind)
	}
	if token != "" {
		r.Header.Set("X-Gitlab-Token", token)
	}
	if uuid != "" {
		r.Header.Set("X-Gitlab-Event-UUID", uuid)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestIntake(t *testing.T) {
	db := openStore(t)
	var results []string
	h := &Intake{Secret: testSecret, Inbox: db, Clock: bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)), MaxBody: 64 << 10,
		Observe: func(r string) { results = append(results, r) }}
	open := fixture(t, "mr-open.json")
	ctx := context.Background()

	for _, tt := range []struct {
		name   string
		kind   string
		token  string
		uuid   string
		body   []byte
		code   int
		result string
	}{
		{"forged token", EventMergeRequest, "guess", "u1", open, 401, "unauthorized"},
		{"no token", EventMergeRequest, "", "u1", open, 401, "unauthorized"},
		{"token with a suffix", EventMergeRequest, string(testSecret) + "x", "u1", open, 401, "unauthorized"},
		{"malformed JSON", EventMergeRequest, string(testSecret), "u2", []byte(`{"object_kind": "merge_request",`), 400, "bad_request"},
		{"not an MR", EventMergeRequest, string(testSecret), "u3", []byte(`{"object_kind": "merge_request"}`), 400, "bad_request"},
		{"too large", EventMergeRequest, string(testSecret), "u4", bytes.Repeat([]byte(" "), 70<<10), 413, "too_large"},
		{"push events are not ours", "Push Hook", string(testSecret), "u5", []byte(`{}`), 200, "ignored"},
		{"an ordinary comment", EventNote, string(testSecret), "u6", bytes.Replace(fixture(t, "note.json"), []byte("/threatgate"), []byte("/shrug"), 1), 200, "ignored"},
		{"an MR event", EventMergeRequest, string(testSecret), "u7", open, 200, "accepted"},
		{"the same delivery again", EventMergeRequest, string(testSecret), "u7", open, 200, "duplicate"},
		{"a command in a comment", EventNote, string(testSecret), "u8", fixture(t, "note.json"), 200, "accepted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			results = nil
			w := post(h, tt.kind, tt.token, tt.uuid, tt.body)
			if w.Code != tt.code {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.code, w.Body)
			}
			if len(results) != 1 || results[0] != tt.result {
				t.Errorf("observed %v, want %s", results, tt.result)
			}
			if strings.Contains(w.Body.String(), string(testSecret)) {
				t.Error("the answer contains the secret")
			}
		})
	}
	items, _ := db.InboxDue(ctx, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	if len(items) != 2 || items[0].Kind != EventMergeRequest || items[1].Kind != EventNote {
		t.Errorf("inbox holds %d items, want the MR event and the command once each", len(items))
	}
}

func TestIntakeRefusesWithoutSecret(t *testing.T) {
	h := &Intake{Inbox: openStore(t), Clock: bottest.NewClock(time.Now())}
	if w := post(h, EventMergeRequest, "", "", fixture(t, "mr-open.json")); w.Code != 401 {
		t.Errorf("no secret configured: status %d, want 401", w.Code)
	}
	if w := post(h, EventMergeRequest, "anything", "", fixture(t, "mr-open.json")); w.Code != 401 {
		t.Errorf("no secret configured: status %d, want 401", w.Code)
	}
}

func TestCommandLine(t *testing.T) {
	for note, want := range map[string]string{
		"/threatgate approve ok":             "/threatgate approve ok",
		"LGTM\n  /threatgate status\nthanks": "/threatgate status\nthanks",
		"\u200d/threatgate help":             "/threatgate help", // copied from a neutralised note
		"\u200b \u200d/threatgate status x":  "/threatgate status x",
		"/threatgatex":                       "",
		"please run /threatgate status":      "",
		"/approve":                           "",
	} {
		if got := commandLine(note); got != want {
			t.Errorf("commandLine(%q) = %q, want %q", note, got, want)
		}
	}
}

// FuzzScreen: the webhook screen never panics, whatever the body.
func FuzzScreen(f *testing.F) {
	for _, name := range []string{"mr-open.json", "note.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(EventMergeRequest, b)
		f.Add(EventNote, b)
	}
	f.Add(EventNote, []byte(`{"object_attributes":{"noteable_type":"MergeRequest","note":"/threatgate"}}`))
	f.Add(EventMergeRequest, []byte(`[]`))
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		ok, err := screen(kind, body)
		if ok && err != nil {
			t.Fatalf("screen(%q) = true with error %v", kind, err)
		}
		if ok {
			// A body the screen accepts must be one the worker can read.
			var h mrHook
			var n noteHook
			if kind == EventMergeRequest && json.Unmarshal(body, &h) != nil || kind == EventNote && json.Unmarshal(body, &n) != nil {
				t.Fatalf("screen accepted a body the worker cannot decode")
			}
		}
		commandLine(string(body))
		parseTime(string(body))
	})
}

// Whatever route reaches them, the webhook handlers take POST only: any
// other method is 405 with Allow: POST, and nothing is recorded.
func TestWebhookHandlersRefuseOtherMethods(t *testing.T) {
	db := openStore(t)
	clock := bottest.NewClock(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	var results []string
	observe := func(r string) { results = append(results, r) }
	for _, h := range []struct {
		name string
		h    http.Handler
	}{
		{"Intake", &Intake{Secret: testSecret, Inbox: db, Clock: clock, Observe: observe}},
		{"StatusCheck", &StatusCheck{Secret: testSecret, Inbox: db, Clock: clock, Observe: observe}},
	} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			results = nil
			r := httptest.NewRequest(m, "/webhooks/gitlab", strings.NewReader(`{"object_kind":"merge_request"}`))
			r.Header.Set("X-Gitlab-Token", string(testSecret))
			r.Header.Set("X-Gitlab-Event", EventMergeRequest)
			r.Header.Set("X-Gitlab-Signature", "00")
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, r)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("%s %s: %d, Allow %q; want 405 with Allow: POST", h.name, m, w.Code, w.Header().Get("Allow"))
			}
			if len(results) != 1 || results[0] != "method_not_allowed" {
				t.Errorf("%s %s observed %q", h.name, m, results)
			}
		}
	}
	if d, _ := db.InboxDepth(context.Background()); d != 0 {
		t.Errorf("%d inputs recorded from refused methods", d)
	}
}

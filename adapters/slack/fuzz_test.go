package slack

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzSlackRequests sends correctly signed requests with arbitrary bodies
// to the three endpoints: none may panic, and each is answered 200 (an
// answer or nothing to do), 400 (unreadable) or 401 (another workspace).
// Seeds are committed under testdata/fuzz/FuzzSlackRequests.
func FuzzSlackRequests(f *testing.F) {
	r := newHTRig(f)
	f.Add(0, command("UALICE", "/threatgate", "help"))
	f.Add(0, command("UANN", "/escalate", "shop/api!1 why\nsummary: x"))
	f.Add(1, url.Values{"payload": {`{"type":"block_actions","team":{"id":"T0TEAM"},"user":{"id":"UALICE"},"actions":[{"action_id":"threatgate:approve","block_id":"b","value":"ESC-1@aaaaaaa"}]}`}}.Encode())
	f.Add(1, url.Values{"payload": {`{"type":"view_submission","team":{"id":"T0TEAM"},"user":{"id":"UALICE"},"view":{"id":"V1","callback_id":"threatgate:modal","private_metadata":"{\"v\":\"artifact\",\"e\":\"ESC-1\"}","state":{"values":{"kind":{"v":{"selected_option":{"value":"threat-model"}}}}}}}`}}.Encode())
	f.Add(1, "payload=%7B")
	f.Add(2, threadMessage("Ev1", "UALICE", "threat-model: https://x"))
	f.Add(2, `{"type":"event_callback","team_id":"T0TEAM","event_id":"E2","event":{"type":"app_home_opened","user":"UALICE","tab":"home"}}`)
	f.Add(2, `{"type":"url_verification","challenge":"c"}`)
	f.Add(2, `{"type":"event_callback","team_id":"T0TEAM","event":{"type":"message","subtype":"file_share","files":[{}],"thread_ts":"1","ts":"2","user":"U1"}}`)
	paths := []string{PathCommands, PathInteractions, PathEvents}
	f.Fuzz(func(t *testing.T, which int, body string) {
		if which < 0 {
			which = -which
		}
		path := paths[which%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		ts, sig := Sign(htSecret, []byte(body), r.Clock.Now())
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		w := httptest.NewRecorder()
		r.h.ServeHTTP(w, req)
		r.app.Drain()
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s %q: status %d %s", path, body, w.Code, w.Body)
		}
	})
}

package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/threatgate/threatgate/bot"
)

// Inbox records verified inputs durably; store.DB implements it.
type Inbox interface {
	Enqueue(ctx context.Context, key, kind string, body []byte, at time.Time) (dup bool, err error)
}

// Webhook event kinds threatgate handles (the X-Gitlab-Event header).
const (
	EventMergeRequest = "Merge Request Hook"
	EventNote         = "Note Hook"
	// EventStatusCheck marks an external status check request in the
	// inbox (GitLab sends no X-Gitlab-Event for those).
	EventStatusCheck = "External Status Check"
)

// DefaultMaxBody bounds a webhook body.
const DefaultMaxBody = 10 << 20

// Intake is the http.Handler for POST /webhooks/gitlab.
type Intake struct {
	Secret  bot.Secret // the webhook's secret token; an empty secret refuses everything
	Inbox   Inbox
	Clock   bot.Clock
	MaxBody int64 // default DefaultMaxBody
	Log     *slog.Logger
	// Wake, when set, is called after an input was recorded.
	Wake func()
	// Observe, when set, is told how each request ended: "accepted",
	// "duplicate", "ignored", "unauthorized", "too_large", "bad_request",
	// "method_not_allowed", "error".
	Observe func(result string)
}

func (h *Intake) observe(result string) {
	if h.Observe != nil {
		h.Observe(result)
	}
}

func (h *Intake) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// tokenOK compares the header with the secret in constant time (over
// digests, so the length does not leak either).
func tokenOK(got string, want bot.Secret) bool {
	return bot.SecretEqual(got, want)
}

func (h *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.observe("method_not_allowed")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	// Verify before reading anything of the body.
	if !tokenOK(r.Header.Get("X-Gitlab-Token"), h.Secret) {
		h.observe("unauthorized")
		h.log().Warn("webhook refused: bad or missing X-Gitlab-Token", "remote", r.RemoteAddr)
		http.Error(w, "bad or missing X-Gitlab-Token", http.StatusUnauthorized)
		return
	}
	kind := r.Header.Get("X-Gitlab-Event")
	if kind != EventMergeRequest && kind != EventNote {
		h.observe("ignored")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "ignored: threatgate handles Merge Request Hook and Note Hook\n")
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.ContentLength > limit {
		h.observe("too_large")
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.observe("too_large")
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		h.observe("bad_request")
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	relevant, err := screen(kind, body)
	if err != nil {
		h.observe("bad_request")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !relevant {
		h.observe("ignored")
		io.WriteString(w, "ignored\n")
		return
	}
	// GitLab keeps Idempotency-Key across its retries and a manual
	// "Resend request"; X-Gitlab-Event-UUID is the fallback.
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		key = r.Header.Get("X-Gitlab-Event-UUID")
	}
	if len(key) > 200 {
		key = key[:200]
	}
	if key != "" {
		key = "gitlab:" + key
	}
	dup, err := h.Inbox.Enqueue(r.Context(), key, kind, body, h.Clock.Now())
	if err != nil {
		h.observe("error")
		h.log().Error("cannot record webhook", bot.LogErr, err)
		http.Error(w, "cannot record the event; GitLab will retry", http.StatusServiceUnavailable)
		return
	}
	if dup {
		h.observe("duplicate")
		io.WriteString(w, "duplicate: already recorded\n")
		return
	}
	h.observe("accepted")
	io.WriteString(w, "recorded\n")
	if h.Wake != nil {
		h.Wake()
	}
}

// StatusCheck is the http.Handler for POST /webhooks/gitlab/status-check:
// GitLab's external status check requests (gate mode
// external_status_check). The body is signed: X-Gitlab-Signature is the
// hex HMAC-SHA256 of the body with the check's shared secret.
type StatusCheck struct {
	Secret  bot.Secret
	Inbox   Inbox
	Clock   bot.Clock
	MaxBody int64
	Log     *slog.Logger
	Wake    func()
	Observe func(result string)
}

func (h *StatusCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := &Intake{Secret: h.Secret, Inbox: h.Inbox, Clock: h.Clock, MaxBody: h.MaxBody, Log: h.Log, Observe: h.Observe}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		in.observe("method_not_allowed")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	sig := r.Header.Get("X-Gitlab-Signature")
	if h.Secret == "" || sig == "" {
		in.observe("unauthorized")
		http.Error(w, "missing X-Gitlab-Signature", http.StatusUnauthorized)
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		in.observe("too_large")
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if err := VerifyStatusCheck(r, body, h.Secret); err != nil {
		in.observe("unauthorized")
		in.log().Warn("status check refused: bad X-Gitlab-Signature", "remote", r.RemoteAddr)
		http.Error(w, "bad X-Gitlab-Signature", http.StatusUnauthorized)
		return
	}
	if _, _, _, err := ParseStatusCheckRequest(body); err != nil {
		in.observe("bad_request")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := h.Inbox.Enqueue(r.Context(), "", EventStatusCheck, body, h.Clock.Now()); err != nil {
		in.observe("error")
		http.Error(w, "cannot record the request", http.StatusServiceUnavailable)
		return
	}
	in.observe("accepted")
	io.WriteString(w, "recorded\n")
	if h.Wake != nil {
		h.Wake()
	}
}

// mrHook is the part of a Merge Request Hook threatgate reads.
type mrHook struct {
	ObjectKind string `json:"object_kind"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	Project struct {
		ID                int64  `json:"id"`
		PathWithNamespace string `json:"path_with_namespace"`
		WebURL            string `json:"web_url"`
	} `json:"project"`
	ObjectAttributes struct {
		IID          int64  `json:"iid"`
		Title        string `json:"title"`
		Description  string `json:"description"`
		State        string `json:"state"`
		Action       string `json:"action"`
		OldRev       string `json:"oldrev"`
		URL          string `json:"url"`
		TargetBranch string `json:"target_branch"`
		SourceBranch string `json:"source_branch"`
		UpdatedAt    string `json:"updated_at"`
		LastCommit   struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
	Labels []struct {
		Title string `json:"title"`
	} `json:"labels"`
}

// noteHook is the part of a Note Hook threatgate reads. It only says
// which note to read back from the API: the author, text and time that
// count are the API's (Worker.comment); user.username is logged as a
// claim, the hook's created_at and last_commit are not read at all.
type noteHook struct {
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	Project struct {
		PathWithNamespace string `json:"path_with_namespace"`
	} `json:"project"`
	ObjectAttributes struct {
		ID           int64  `json:"id"`
		Note         string `json:"note"`
		NoteableType string `json:"noteable_type"`
	} `json:"object_attributes"`
	MergeRequest struct {
		IID int64 `json:"iid"`
	} `json:"merge_request"`
}

// screen checks a body is a well-formed event threatgate acts on; an
// error is a 400 for the sender.
func screen(kind string, body []byte) (bool, error) {
	switch kind {
	case EventMergeRequest:
		var h mrHook
		if err := json.Unmarshal(body, &h); err != nil {
			return false, errors.New("malformed JSON: " + jsonErr(err))
		}
		if h.Project.PathWithNamespace == "" || h.ObjectAttributes.IID <= 0 {
			return false, errors.New("a Merge Request Hook needs project.path_with_namespace and object_attributes.iid")
		}
		return true, nil
	case EventNote:
		var h noteHook
		if err := json.Unmarshal(body, &h); err != nil {
			return false, errors.New("malformed JSON: " + jsonErr(err))
		}
		if h.ObjectAttributes.NoteableType != "MergeRequest" || commandLine(h.ObjectAttributes.Note) == "" {
			return false, nil // ordinary comments are none of threatgate's business
		}
		if strings.Contains(h.ObjectAttributes.Note, "<!-- threatgate:") {
			return false, nil // threatgate's own notes quote commands; never run them
		}
		if h.Project.PathWithNamespace == "" || h.MergeRequest.IID <= 0 || h.User.Username == "" {
			return false, errors.New("a Note Hook needs project.path_with_namespace, merge_request.iid and user.username")
		}
		return true, nil
	}
	return false, nil
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error()
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + te.Field + " has the wrong type"
	}
	return "not a JSON object"
}

// commandLine returns the comment from its first "/threatgate" line on, or
// "" when there is none. GitLab owns /approve in comments, so only the
// /threatgate form is read here.
func commandLine(note string) string {
	lines := strings.Split(note, "\n")
	for i, line := range lines {
		// A line copied from threatgate's own (neutralised) notes starts
		// with a zero-width joiner: it is still the command.
		t := strings.TrimSpace(strings.TrimLeftFunc(line, func(r rune) bool {
			return unicode.IsSpace(r) || strings.ContainsRune("\u200b\u200c\u200d\u2060\ufeff", r)
		}))
		if t == "/threatgate" || strings.HasPrefix(t, "/threatgate ") {
			return strings.Join(append([]string{t}, lines[i+1:]...), "\n")
		}
	}
	return ""
}

// parseTime reads GitLab's webhook times: RFC 3339 or "2006-01-02 15:04:05 UTC".
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

package slack

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	sl "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/threatgate/threatgate/bot"
)

// maxRequest bounds a request from Slack; the largest (a message event
// with blocks and files) is far below it.
const maxRequest = 1 << 20

// maxSkew is how far a request's timestamp may be from now: Slack's own
// replay window.
const maxSkew = 5 * time.Minute

// Paths of the HTTP endpoints (the app manifest names them).
const (
	PathCommands     = "/slack/commands"
	PathInteractions = "/slack/interactions"
	PathEvents       = "/slack/events"
)

// Handler serves Slack's requests: slash commands, interactions (buttons,
// modal submissions) and Events API callbacks. Each request's v0
// signature is checked over the raw body before anything is parsed, and a
// timestamp more than 5 minutes from now is refused: 401, nothing read,
// nothing stored. A request from another workspace gets 401 too.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCommands, a.serveCommand)
	mux.HandleFunc("POST "+PathInteractions, a.serveInteraction)
	mux.HandleFunc("POST "+PathEvents, a.serveEvent)
	return mux
}

// errSignature is a request whose signature or timestamp is wrong.
var errSignature = errors.New("bad signature")

// verify reads the body and checks Slack's signature over it: the
// HMAC-SHA256, keyed with the signing secret, of "v0:" + timestamp + ":"
// + body, sent as "v0=" + hex in X-Slack-Signature.
func (a *App) verify(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if a.SigningSecret == "" {
		return nil, errSignature
	}
	// The cheap checks first: a request without a fresh timestamp and a
	// signature of the right shape is refused before its body is read.
	ts, sig := r.Header.Get("X-Slack-Request-Timestamp"), r.Header.Get("X-Slack-Signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || !strings.HasPrefix(sig, "v0=") || len(sig) != len("v0=")+2*sha256.Size {
		return nil, errSignature
	}
	if d := a.now().Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return nil, errSignature
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		return nil, fmt.Errorf("read the request: %w", err)
	}
	mac := hmac.New(sha256.New, []byte(a.SigningSecret.Reveal()))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(raw)
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return nil, errSignature
	}
	return raw, nil
}

// refuse answers a request that failed verification.
func (a *App) refuse(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errSignature):
		a.Log.Warn("slack request refused: bad or stale signature", "path", r.URL.Path)
		http.Error(w, "bad or stale signature", http.StatusUnauthorized)
	case errors.Is(err, errForeignTeam):
		a.Log.Warn("slack request refused: another workspace", "path", r.URL.Path)
		http.Error(w, "this app serves another workspace", http.StatusUnauthorized)
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request", http.StatusBadRequest)
	}
}

func (a *App) serveCommand(w http.ResponseWriter, r *http.Request) {
	raw, err := a.verify(w, r)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	cmd := sl.SlashCommand{
		TeamID: form.Get("team_id"), ChannelID: form.Get("channel_id"), UserID: form.Get("user_id"),
		Command: form.Get("command"), Text: form.Get("text"), ResponseURL: form.Get("response_url"), TriggerID: form.Get("trigger_id"),
	}
	sec, _ := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	ans, err := a.Command(withWritten(r.Context(), time.Unix(sec, 0)), cmd)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	writeAnswer(w, ans)
}

func (a *App) serveInteraction(w http.ResponseWriter, r *http.Request) {
	raw, err := a.verify(w, r)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	var ic sl.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
		a.refuse(w, r, err)
		return
	}
	ans, err := a.Interaction(r.Context(), &ic)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	writeAnswer(w, ans)
}

func (a *App) serveEvent(w http.ResponseWriter, r *http.Request) {
	raw, err := a.verify(w, r)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(raw), slackevents.OptionNoVerifyToken())
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if ev.Type == slackevents.URLVerification {
		if uv, ok := ev.Data.(*slackevents.EventsAPIURLVerificationEvent); ok {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, uv.Challenge)
			return
		}
	}
	if ev.Type != slackevents.CallbackEvent {
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := a.Event(r.Context(), ev); err != nil {
		if errors.Is(err, errForeignTeam) {
			a.refuse(w, r, err)
			return
		}
		// Not handled (the store failed): Slack retries an event that is
		// not answered with a 2xx.
		http.Error(w, "not handled; retry", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// writeAnswer writes an answer as JSON; nil is an empty 200.
func writeAnswer(w http.ResponseWriter, ans Answer) {
	if ans == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(ans); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}

// Verify is the check threatgate makes of every HTTP request from Slack,
// for tests and tools: nil when sig is the v0 signature of body at ts
// under secret and ts is within 5 minutes of now.
func Verify(secret bot.Secret, ts, sig string, body []byte, now time.Time) error {
	a := &App{SigningSecret: secret, Clock: fixed(now)}
	r, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("X-Slack-Request-Timestamp", ts)
	r.Header.Set("X-Slack-Signature", strings.TrimSpace(sig))
	_, err := a.verify(nil, r)
	return err
}

// Sign returns the headers of a request Slack would sign with secret at
// t: for tests and the load program.
func Sign(secret bot.Secret, body []byte, t time.Time) (ts, sig string) {
	ts = strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write([]byte("v0:" + ts + ":"))
	mac.Write(body)
	return ts, "v0=" + hex.EncodeToString(mac.Sum(nil))
}

type fixed time.Time

func (f fixed) Now() time.Time { return time.Time(f) }

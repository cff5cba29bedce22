package web

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/threatgate/threatgate/bot"
)

// retroView is what templates/retro.html shows.
type retroView struct {
	R    *bot.Retro
	Name string // "2026Q4"
	JSON string
}

// retro serves GET /reports/retro: the retrospective of ?quarter=2026Q4
// (by default the current quarter, UTC), in the shared layout, or as JSON
// (bot.Retro) with ?format=json. A malformed quarter, one that has not
// begun, or another format is a 400 saying what is expected. It reads
// that quarter of the audit log only (bot.RetroOf), never the whole
// store.
func (s *Server) retro(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	asJSON, refuse, ok := s.reportFormat(w, r)
	if !ok {
		return
	}
	now := s.now()
	name := bot.Quarter(now)
	if v := q.Get("quarter"); v != "" {
		name = v
	}
	year, quarter, err := bot.ParseQuarter(name)
	if err != nil {
		refuse(err.Error() + ".")
		return
	}
	name = bot.QuarterName(year, quarter)
	if bot.QuarterStart(year, quarter).After(now) {
		refuse(fmt.Sprintf("quarter: %s has not begun yet; the current quarter is %s.", name, bot.Quarter(now)))
		return
	}
	rep, err := bot.RetroOf(r.Context(), s.Store, year, quarter, now, s.policy())
	if s.reportAsJSON(w, r, "retro", asJSON, rep, err) {
		return
	}
	v := retroView{R: rep, Name: name, JSON: "/reports/retro?" + url.Values{"quarter": {name}, "format": {"json"}}.Encode()}
	s.Render(w, r, "retro", "Retrospective "+name, v)
}

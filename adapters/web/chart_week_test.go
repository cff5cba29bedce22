package web_test

import (
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
)

// TestThroughputWeekDates: a week's label is its dates, on two lines at
// the dash, escaped like every label.
func TestThroughputWeekDates(t *testing.T) {
	svg := string(web.ThroughputChart([]web.Week{
		{Start: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), Label: "30 Nov – 6 Dec", Opened: 1},
		{Label: "<b> – </b>", Decided: 1},
	}))
	wantContains(t, svg, `>30 Nov</tspan><tspan x=`, `dy="13">– 6 Dec</tspan></text>`, `&lt;b&gt;</tspan>`, `– &lt;/b&gt;</tspan>`)
	if strings.Contains(svg, "<b>") {
		t.Errorf("label not escaped:\n%s", svg)
	}
}

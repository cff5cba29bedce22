package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Week is one week of the throughput chart: how many escalations were
// opened and how many decided (approved or rejected) in it.
type Week struct {
	Start   time.Time // Monday 00:00 UTC of the ISO week
	Label   string    // the axis label: the week's dates, "30 Nov – 6 Dec" (two lines at the dash)
	Opened  int
	Decided int
}

// Name returns the ISO week as "2026-W45", or the label when Start is
// unset.
func (w Week) Name() string {
	if w.Start.IsZero() {
		return w.Label
	}
	y, n := w.Start.ISOWeek()
	return fmt.Sprintf("%d-W%02d", y, n)
}

// The chart's geometry, in viewBox units.
const (
	chartW, chartH             = 640, 272
	chartLeft, chartRight      = 40, 12
	chartTop, chartBottom      = 16, 68
	chartPlotW                 = chartW - chartLeft - chartRight
	chartPlotH                 = chartH - chartTop - chartBottom
	chartBarShare, chartBarGap = 0.34, 0.04 // of a week's slot, per bar and between the two
)

// ThroughputChart draws opened vs decided per week as an SVG bar chart:
// two bars per week (class "bar opened" and "bar decided"), a y axis
// with integer ticks, week labels, a legend, and a <title> and <desc>
// that say the same in words. It is a pure function of weeks; every text
// in it is escaped, so the result is safe to put in a page as is. Its
// colours come from the stylesheet, with fill attributes as a fallback.
func ThroughputChart(weeks []Week) template.HTML {
	esc := template.HTMLEscapeString
	var b strings.Builder
	total := func(f func(Week) int) int {
		n := 0
		for _, w := range weeks {
			n += f(w)
		}
		return n
	}
	opened := total(func(w Week) int { return w.Opened })
	decided := total(func(w Week) int { return w.Decided })
	peak := 0
	for _, w := range weeks {
		peak = max(peak, w.Opened, w.Decided)
	}
	step, top := ticks(peak)

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="throughput-title throughput-desc">`, chartW, chartH)
	b.WriteString(`<title id="throughput-title">Escalations opened and decided per ISO week</title>`)
	desc := "No weeks to show."
	if len(weeks) > 0 {
		desc = fmt.Sprintf("%d weeks, %s to %s: %d opened, %d decided.", len(weeks), weeks[0].Name(), weeks[len(weeks)-1].Name(), opened, decided)
		var per []string
		for _, w := range weeks {
			per = append(per, fmt.Sprintf("%s %d opened, %d decided", w.Name(), w.Opened, w.Decided))
		}
		desc += " " + strings.Join(per, "; ") + "."
	}
	fmt.Fprintf(&b, `<desc id="throughput-desc">%s</desc>`, esc(desc))

	y := func(v int) float64 { return chartTop + chartPlotH - float64(v)/float64(top)*chartPlotH }
	b.WriteString(`<g class="grid">`)
	for v := 0; v <= top; v += step {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ccc"/>`, chartLeft, y(v), chartW-chartRight, y(v))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%d</text>`, chartLeft-6, y(v), v)
	}
	b.WriteString(`</g>`)
	fmt.Fprintf(&b, `<g class="axis"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#666"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#666"/></g>`,
		chartLeft, chartTop, chartLeft, chartTop+chartPlotH, chartLeft, chartTop+chartPlotH, chartW-chartRight, chartTop+chartPlotH)

	if n := len(weeks); n > 0 {
		slot := float64(chartPlotW) / float64(n)
		barW := slot * chartBarShare
		for _, s := range []struct {
			class, fill, verb string
			v                 func(Week) int
			off               float64
		}{
			{"opened", "#d9822b", "opened", func(w Week) int { return w.Opened }, -barW - slot*chartBarGap/2},
			{"decided", "#2b7bd9", "decided", func(w Week) int { return w.Decided }, slot * chartBarGap / 2},
		} {
			fmt.Fprintf(&b, `<g class="series %s">`, s.class)
			for i, w := range weeks {
				mid := chartLeft + slot*(float64(i)+0.5)
				v := s.v(w)
				fmt.Fprintf(&b, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
					s.class, mid+s.off, y(v), barW, y(0)-y(v), s.fill, esc(fmt.Sprintf("%s: %d %s", w.Name(), v, s.verb)))
			}
			b.WriteString(`</g>`)
		}
		b.WriteString(`<g class="labels">`)
		for i, w := range weeks {
			x := chartLeft + slot*(float64(i)+0.5)
			first, second, two := strings.Cut(w.Label, " – ")
			if !two {
				fmt.Fprintf(&b, `<text class="week" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, chartTop+chartPlotH+16, esc(w.Label))
				continue
			}
			// A range of dates: one line per end, so that twelve weeks fit.
			fmt.Fprintf(&b, `<text class="week" x="%.1f" y="%d" text-anchor="middle"><tspan x="%.1f">%s</tspan><tspan x="%.1f" dy="13">– %s</tspan></text>`,
				x, chartTop+chartPlotH+16, x, esc(first), x, esc(second))
		}
		b.WriteString(`</g>`)
	}
	ly := chartH - 14
	fmt.Fprintf(&b, `<g class="legend"><rect class="swatch opened" x="%d" y="%d" width="12" height="12" fill="#d9822b"/><text x="%d" y="%d">opened (%d)</text>`,
		chartLeft, ly-10, chartLeft+18, ly, opened)
	fmt.Fprintf(&b, `<rect class="swatch decided" x="%d" y="%d" width="12" height="12" fill="#2b7bd9"/><text x="%d" y="%d">decided (%d)</text></g>`,
		chartLeft+140, ly-10, chartLeft+158, ly, decided)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from numbers and escaped labels only
}

// ticks returns the step between y-axis ticks and the axis top for
// values up to peak: integers, at most about five ticks, top >= 1.
func ticks(peak int) (step, top int) {
	if peak <= 5 {
		return 1, max(peak, 1)
	}
	raw := (peak + 4) / 5
	mag := 1
	for mag*10 <= raw {
		mag *= 10
	}
	for _, m := range []int{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	top = (peak + step - 1) / step * step
	return step, top
}

// weekLabel names the week starting on Monday start by its dates, Monday
// to Sunday: "30 Nov – 6 Dec".
func weekLabel(start time.Time) string {
	return start.Format("2 Jan") + " – " + start.AddDate(0, 0, 6).Format("2 Jan")
}

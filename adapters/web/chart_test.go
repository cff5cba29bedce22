package web_test

import (
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threatgate/threatgate/adapters/web"
)

// update rewrites the .golden files under testdata from what the code
// makes now: go test ./adapters/web -run Golden -update. Shared by every
// test file of the package.
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the code makes now (run with -update and review the diff):\n got %s\nwant %s", path, got, want)
	}
}

// svgElem is an element of the chart with the attributes the tests read.
type svgElem struct {
	Name  string
	Class string
	Attr  map[string]string
	Text  string
}

// parseSVG checks that svg is well-formed XML and returns its elements in
// document order.
func parseSVG(t *testing.T, svg string) []svgElem {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	var out []svgElem
	var open []int
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := svgElem{Name: tok.Name.Local, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				e.Attr[a.Name.Local] = a.Value
			}
			e.Class = e.Attr["class"]
			out = append(out, e)
			open = append(open, len(out)-1)
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].Text += string(tok)
			}
		case xml.EndElement:
			open = open[:len(open)-1]
		}
	}
	return out
}

func weeksFrom(start time.Time, counts ...[2]int) []web.Week {
	var ws []web.Week
	for i, c := range counts {
		s := start.AddDate(0, 0, 7*i)
		_, n := s.ISOWeek()
		ws = append(ws, web.Week{Start: s, Label: "W" + strconv.Itoa(n), Opened: c[0], Decided: c[1]})
	}
	return ws
}

func TestThroughputChart(t *testing.T) {
	monday := time.Date(2026, 8, 17, 0, 0, 0, 0, time.UTC) // 2026-W34
	counts := [][2]int{{0, 0}, {1, 0}, {3, 1}, {0, 2}, {7, 4}, {2, 2}, {0, 0}, {1, 1}, {4, 0}, {0, 3}, {2, 5}, {6, 1}}
	weeks := weeksFrom(monday, counts...)
	svg := string(web.ThroughputChart(weeks))
	els := parseSVG(t, svg)

	if els[0].Name != "svg" || els[0].Attr["role"] != "img" || els[0].Attr["aria-labelledby"] != "throughput-title throughput-desc" {
		t.Errorf("root = %+v, want an accessible <svg role=img>", els[0])
	}
	bars := map[string][]svgElem{}
	var labels, ticks []string
	var title, desc string
	for _, e := range els {
		switch {
		case e.Name == "title" && e.Attr["id"] == "throughput-title":
			title = e.Text
		case e.Name == "desc":
			desc = e.Text
		case e.Name == "rect" && strings.HasPrefix(e.Class, "bar "):
			bars[strings.TrimPrefix(e.Class, "bar ")] = append(bars[strings.TrimPrefix(e.Class, "bar ")], e)
		case e.Name == "text" && e.Class == "week":
			labels = append(labels, e.Text)
		case e.Name == "text" && e.Class == "tick":
			ticks = append(ticks, e.Text)
		}
	}
	if len(bars["opened"]) != 12 || len(bars["decided"]) != 12 {
		t.Fatalf("bars: %d opened, %d decided; want 12 each", len(bars["opened"]), len(bars["decided"]))
	}
	wantLabels := "W34 W35 W36 W37 W38 W39 W40 W41 W42 W43 W44 W45"
	if got := strings.Join(labels, " "); got != wantLabels {
		t.Errorf("week labels %q, want %q", got, wantLabels)
	}
	if title == "" {
		t.Error("no <title>")
	}
	for _, want := range []string{"12 weeks, 2026-W34 to 2026-W45", "26 opened, 19 decided", "2026-W38 7 opened, 4 decided"} {
		if !strings.Contains(desc, want) {
			t.Errorf("desc %q lacks %q", desc, want)
		}
	}
	// Peak 7: integer ticks up to a top of at least 7.
	if len(ticks) < 2 || ticks[0] != "0" {
		t.Errorf("ticks %q, want integers from 0", ticks)
	}
	top, _ := strconv.Atoi(ticks[len(ticks)-1])
	if top < 7 || top > 10 {
		t.Errorf("axis top %d, want 7..10 for a peak of 7", top)
	}

	// Bar heights are proportional to the counts; zero is flat.
	height := func(e svgElem) float64 {
		h, err := strconv.ParseFloat(e.Attr["height"], 64)
		if err != nil {
			t.Fatalf("bar height %q: %v", e.Attr["height"], err)
		}
		return h
	}
	unit := height(bars["opened"][4]) / 7
	for i, c := range counts {
		for j, series := range []string{"opened", "decided"} {
			got, want := height(bars[series][i]), unit*float64(c[j])
			if got < want-0.2 || got > want+0.2 {
				t.Errorf("%s bar of week %d: height %.1f, want %.1f", series, i, got, want)
			}
		}
	}
	// Each bar says what it is when hovered.
	if !strings.Contains(svg, "<title>2026-W38: 7 opened</title>") {
		t.Error("bar tooltips missing")
	}
	// Colours come from classes, with fill fallbacks; no inline style (the CSP forbids it).
	if strings.Contains(svg, "style=") || strings.Contains(svg, "<style") || strings.Contains(svg, "<script") {
		t.Error("chart has inline style or script")
	}
}

// TestThroughputChartGolden keeps the whole drawing under review: open
// testdata/throughput.svg.golden in a browser to see it.
func TestThroughputChartGolden(t *testing.T) {
	weeks := weeksFrom(time.Date(2026, 8, 17, 0, 0, 0, 0, time.UTC),
		[2]int{0, 0}, [2]int{1, 0}, [2]int{3, 1}, [2]int{0, 2}, [2]int{7, 4}, [2]int{2, 2},
		[2]int{0, 0}, [2]int{1, 1}, [2]int{4, 0}, [2]int{0, 3}, [2]int{2, 5}, [2]int{6, 1})
	golden(t, "throughput.svg.golden", string(web.ThroughputChart(weeks))+"\n")
}

func TestThroughputChartEscapesLabels(t *testing.T) {
	svg := string(web.ThroughputChart([]web.Week{{Label: `<script>alert(1)</script>`, Opened: 1}, {Label: `"&'`, Decided: 2}}))
	if strings.Contains(svg, "<script>") {
		t.Fatal("label not escaped")
	}
	parseSVG(t, svg)
}

func TestThroughputChartEmptyAndFlat(t *testing.T) {
	for _, ws := range [][]web.Week{nil, weeksFrom(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), [2]int{}, [2]int{}, [2]int{})} {
		svg := string(web.ThroughputChart(ws))
		els := parseSVG(t, svg)
		for _, e := range els {
			for k, v := range e.Attr {
				if strings.Contains(v, "NaN") || strings.Contains(v, "Inf") {
					t.Errorf("%s %s=%q", e.Name, k, v)
				}
			}
		}
		if n := strings.Count(svg, `class="bar `); n != 2*len(ws) {
			t.Errorf("%d bars for %d weeks", n, len(ws))
		}
	}
}

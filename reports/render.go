package reports

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
)

// Formats are the output formats Render knows.
var Formats = []string{"html", "pdf", "csv", "json"}

// Render writes r in format.
func Render(w io.Writer, r *Report, format string) error {
	switch format {
	case "html":
		return RenderHTML(w, r)
	case "pdf":
		return RenderPDF(w, r)
	case "csv":
		return RenderCSV(w, r)
	case "json":
		return RenderJSON(w, r)
	}
	return fmt.Errorf("reports: unknown format %q (known: %s)", format, strings.Join(Formats, ", "))
}

// RenderJSON writes the report as one indented JSON object.
func RenderJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// provenance is the sentence every format carries.
func provenance(r *Report) string {
	m := r.Meta
	return fmt.Sprintf("Made %s for the period %s to %s from %s on the %s store; server version %s, configuration revision %s, policy revision %s.",
		m.Generated.Format(time.RFC3339), m.From.Format(time.RFC3339), m.To.Format(time.RFC3339),
		strings.Join(m.Sources, "; "), m.Backend, m.ServerVersion, m.ConfigRevision, m.PolicyRevision)
}

// RenderCSV writes one CSV stream: the first column names the part a
// record belongs to ("meta", "fact", "chart: TITLE" or a section's title);
// each section starts with its column names.
func RenderCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	m := r.Meta
	recs := [][]string{
		{"meta", "report", r.Name}, {"meta", "title", r.Title},
		{"meta", "generated", m.Generated.Format(time.RFC3339)},
		{"meta", "from", m.From.Format(time.RFC3339)}, {"meta", "to", m.To.Format(time.RFC3339)},
		{"meta", "server_version", m.ServerVersion}, {"meta", "config_revision", m.ConfigRevision},
		{"meta", "policy_revision", m.PolicyRevision}, {"meta", "backend", m.Backend},
		{"meta", "sources", strings.Join(m.Sources, "; ")},
	}
	for _, f := range r.Facts {
		recs = append(recs, []string{"fact", f.Label, f.Value})
	}
	for _, c := range r.Charts {
		for i, l := range c.Labels {
			recs = append(recs, []string{"chart: " + c.Title, l, fmt.Sprint(c.Values[i])})
		}
	}
	for _, s := range r.Sections {
		recs = append(recs, append([]string{s.Title}, s.Columns...))
		for _, row := range s.Rows {
			recs = append(recs, append([]string{s.Title}, row...))
		}
	}
	if err := cw.WriteAll(recs); err != nil {
		return fmt.Errorf("reports: csv: %w", err)
	}
	return nil
}

// svgChart draws a bar chart as inline SVG.
func svgChart(c Chart) template.HTML {
	const w, h, left, bottom, top = 720.0, 260.0, 60.0, 60.0, 10.0
	maxV := axisMax(c.Values)
	n := float64(len(c.Values))
	slot := (w - left - 10) / math.Max(n, 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="%s">`, w, h, template.HTMLEscapeString(c.Title))
	plotH := h - bottom - top
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" class="axis"/>`, left, h-bottom, w-10, h-bottom)
	for i := 0; i <= 4; i++ {
		y := h - bottom - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" class="grid"/><text x="%.0f" y="%.1f" class="tick" text-anchor="end">%s</text>`,
			left, y, w-10, y, left-4, y+4, template.HTMLEscapeString(shortNum(maxV*float64(i)/4)))
	}
	for i, v := range c.Values {
		bh := plotH * v / maxV
		x := left + slot*float64(i) + slot*0.15
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="bar"><title>%s: %s %s</title></rect>`,
			x, h-bottom-bh, slot*0.7, bh, template.HTMLEscapeString(c.Labels[i]), shortNum(v), template.HTMLEscapeString(c.Unit))
		lx, ly := x+slot*0.35, h-bottom+12
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="label" text-anchor="end" transform="rotate(-35 %.1f %.1f)">%s</text>`,
			lx, ly, lx, ly, template.HTMLEscapeString(c.Labels[i]))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"chart": svgChart, "provenance": provenance,
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { --ink: #1d2733; --muted: #5b6673; --line: #d5dbe1; --accent: #2f6690; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); margin: 0; padding: 2rem; max-width: 72rem; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 1.5rem; padding-bottom: .75rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; color: var(--accent); }
.intro { color: var(--muted); margin: .25rem 0; }
.meta { font-size: .85rem; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: .75rem; margin: 1rem 0; }
dl.facts div { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
dt { font-size: .8rem; color: var(--muted); }
dd { margin: 0; font-size: 1.1rem; font-weight: 600; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { background: var(--bg); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { font-size: .85rem; color: var(--muted); }
.empty { color: var(--muted); font-style: italic; }
figure { margin: 1rem 0; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
svg .bar { fill: var(--accent); }
svg .axis { stroke: var(--ink); }
svg .grid { stroke: var(--line); }
svg text { font-size: 11px; fill: var(--muted); }
footer { margin-top: 2rem; border-top: 1px solid var(--line); padding-top: .5rem; font-size: .8rem; color: var(--muted); }
@media print {
  body { padding: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; }
  tr, figure, dl.facts div { break-inside: avoid; }
  thead { display: table-header-group; }
  @page { size: A4; margin: 15mm; }
}
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<p class="intro">{{.Intro}}</p>
<p class="meta">Period {{date .Meta.From}} to {{date .Meta.To}} · made {{date .Meta.Generated}} · Kontor {{.Meta.ServerVersion}} · configuration {{.Meta.ConfigRevision}} · policy {{.Meta.PolicyRevision}}</p>
</header>
{{with .Facts}}<dl class="facts">{{range .}}<div><dt>{{.Label}}</dt><dd>{{.Value}}</dd></div>{{end}}</dl>{{end}}
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>{{chart .}}</figure>{{end}}
{{range .Sections}}<section>
<h2>{{.Title}}</h2>
{{with .Note}}<p class="note">{{.}}</p>{{end}}
{{if .Rows}}<table><thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</tbody></table>
{{else}}<p class="empty">None.</p>{{end}}
</section>
{{end}}
<footer>{{provenance .}}</footer>
</body>
</html>
`))

// RenderHTML writes a self-contained HTML page: inline CSS, charts as
// inline SVG, no script and no external resource; printable (@media print).
func RenderHTML(w io.Writer, r *Report) error {
	if err := page.Execute(w, r); err != nil {
		return fmt.Errorf("reports: html: %w", err)
	}
	return nil
}

// RenderPDF writes an A4 PDF with the core Helvetica font (cp1252, so text
// outside it is transliterated by fpdf's translator).
func RenderPDF(w io.Writer, r *Report) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(15, 15, 15)
	pdf.SetAutoPageBreak(true, 15)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetTitle(r.Title, true)
	pdf.SetCreator("Kontor "+r.Meta.ServerVersion, true)
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(100, 100, 100)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("%s · page %d", r.Title, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	width, _ := pdf.GetPageSize()
	usable := width - 30
	pdf.SetFont("Helvetica", "B", 16)
	pdf.MultiCell(0, 8, tr(r.Title), "", "L", false)
	pdf.SetFont("Helvetica", "", 9)
	pdf.SetTextColor(80, 80, 80)
	pdf.MultiCell(0, 4.5, tr(r.Intro), "", "L", false)
	pdf.Ln(1)
	pdf.MultiCell(0, 4.5, tr(provenance(r)), "", "L", false)
	pdf.SetTextColor(0, 0, 0)
	pdf.Ln(3)
	for _, f := range r.Facts {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(60, 5, tr(f.Label), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 5, tr(f.Value), "", "L", false)
	}
	for _, c := range r.Charts {
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(0, 7, tr(c.Title), "", 1, "L", false, 0, "")
		pdfChart(pdf, c, usable, tr)
	}
	for _, s := range r.Sections {
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 11)
		pdf.SetTextColor(47, 102, 144)
		pdf.CellFormat(0, 7, tr(s.Title), "", 1, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		if s.Note != "" {
			pdf.SetFont("Helvetica", "I", 8)
			pdf.MultiCell(0, 4, tr(s.Note), "", "L", false)
		}
		if len(s.Rows) == 0 {
			pdf.SetFont("Helvetica", "I", 9)
			pdf.CellFormat(0, 5, "None.", "", 1, "L", false, 0, "")
			continue
		}
		pdfTable(pdf, s, usable, tr)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("reports: pdf: %w", err)
	}
	return nil
}

func pdfTable(pdf *fpdf.Fpdf, s Section, usable float64, tr func(string) string) {
	n := len(s.Columns)
	colW := usable / float64(n)
	const lineH = 4.0
	row := func(cells []string, head bool) {
		style := ""
		if head {
			style = "B"
			pdf.SetFillColor(235, 239, 243)
		}
		pdf.SetFont("Helvetica", style, 7.5)
		lines := 1
		for _, c := range cells {
			lines = max(lines, len(pdf.SplitText(tr(c), colW-2)))
		}
		h := float64(lines) * lineH
		_, pageH := pdf.GetPageSize()
		if pdf.GetY()+h > pageH-15 {
			pdf.AddPage()
		}
		x, y := pdf.GetXY()
		for i, c := range cells {
			pdf.Rect(x+colW*float64(i), y, colW, h, map[bool]string{true: "FD", false: "D"}[head])
			pdf.SetXY(x+colW*float64(i), y)
			pdf.MultiCell(colW, lineH, tr(c), "", "L", false)
		}
		pdf.SetXY(x, y+h)
	}
	pdf.SetDrawColor(200, 205, 210)
	row(s.Columns, true)
	for _, r := range s.Rows {
		row(r, false)
	}
}

func pdfChart(pdf *fpdf.Fpdf, c Chart, usable float64, tr func(string) string) {
	const h = 45.0
	_, pageH := pdf.GetPageSize()
	if pdf.GetY()+h+15 > pageH-15 {
		pdf.AddPage()
	}
	x0, y0 := pdf.GetX()+12, pdf.GetY()
	w := usable - 12
	maxV := axisMax(c.Values)
	pdf.SetDrawColor(120, 120, 120)
	pdf.Line(x0, y0+h, x0+w, y0+h)
	pdf.SetFont("Helvetica", "", 6)
	for i := 0; i <= 4; i++ {
		y := y0 + h - h*float64(i)/4
		pdf.Text(x0-11, y+1, shortNum(maxV*float64(i)/4))
	}
	slot := w / math.Max(float64(len(c.Values)), 1)
	pdf.SetFillColor(47, 102, 144)
	for i, v := range c.Values {
		bh := h * v / maxV
		pdf.Rect(x0+slot*float64(i)+slot*0.15, y0+h-bh, slot*0.7, bh, "F")
		pdf.TransformBegin()
		lx, ly := x0+slot*float64(i)+slot*0.5, y0+h+2
		pdf.TransformRotate(35, lx, ly)
		pdf.Text(lx-float64(len(c.Labels[i]))*1.1, ly+1, tr(c.Labels[i]))
		pdf.TransformEnd()
	}
	pdf.SetXY(pdf.GetX(), y0+h+14)
}

// axisMax is the top of a chart's value axis: four ticks of a round step
// (1, 2 or 5 times a power of ten, at least 1: the values are counts).
func axisMax(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = math.Max(m, v)
	}
	x := m / 4
	step := 1.0
	if x > 1 {
		p := math.Pow(10, math.Floor(math.Log10(x)))
		for _, k := range []float64{1, 2, 5, 10} {
			if step = k * p; step >= x {
				break
			}
		}
	}
	return 4 * step
}

package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Report is everything one invocation measured; it is results.json.
type Report struct {
	Date        time.Time     `json:"date"`
	Hardware    string        `json:"hardware"`
	GoVersion   string        `json:"go_version"`
	Command     string        `json:"command"`
	Runs        []*Result     `json:"runs,omitempty"`
	Idle        []*IdleResult `json:"idle,omitempty"`
	Comparisons []Comparison  `json:"comparisons,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
}

// Stat is the median and range of one metric over rounds.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func statOf(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// TargetStats aggregates the rounds of one scenario against one target.
type TargetStats struct {
	Label        string       `json:"label"`
	Ceiling      bool         `json:"ceiling,omitempty"` // a discarding sink, not a broker
	SendMBps     Stat         `json:"send_mbps"`
	Delivered    Stat         `json:"delivered_rate"`
	Sent         Stat         `json:"send_rate"`
	MBps         Stat         `json:"mbps"`
	PerBrokerCPU Stat         `json:"msgs_per_broker_cpu_s"`
	BrokerCPUPct Stat         `json:"broker_cpu_pct"`
	GenCPUPct    Stat         `json:"gen_cpu_pct"`
	P50Us        Stat         `json:"p50_us"`
	P99Us        Stat         `json:"p99_us"`
	P999Us       Stat         `json:"p999_us"`
	AckP99Us     Stat         `json:"ack_p99_us"`
	DropPct      Stat         `json:"drop_pct"`
	RSSPeak      Stat         `json:"broker_rss_peak"`
	Errors       int64        `json:"errors"`
	Curve        []CurvePoint `json:"curve,omitempty"` // of the median-throughput round
	AckCurve     []CurvePoint `json:"ack_curve,omitempty"`
	// Ratios of the first target of the comparison to this one (subject / this).
	RatioDelivered float64 `json:"ratio_delivered,omitempty"`
	RatioPerCPU    float64 `json:"ratio_per_cpu,omitempty"`
	RatioMBps      float64 `json:"ratio_mbps,omitempty"`
}

// Comparison is one scenario over all its targets; Targets[0] is the subject.
type Comparison struct {
	Scenario string        `json:"scenario"`
	Proto    string        `json:"proto"`
	Targets  []TargetStats `json:"targets"`
}

func scenarioKey(r *Result) string {
	if r.Config.Scenario != "" {
		return r.Config.Scenario
	}
	return r.Config.Proto
}

// aggregate groups runs by scenario and label, in first-seen order.
func aggregate(runs []*Result) []Comparison {
	var out []Comparison
	idx := map[string]int{}
	type key struct{ s, l string }
	byKey := map[key][]*Result{}
	var labels = map[string][]string{}
	for _, r := range runs {
		s := scenarioKey(r)
		if _, ok := idx[s]; !ok {
			idx[s] = len(out)
			out = append(out, Comparison{Scenario: s, Proto: r.Config.Proto})
		}
		k := key{s, r.Config.Label}
		if _, ok := byKey[k]; !ok {
			labels[s] = append(labels[s], r.Config.Label)
		}
		byKey[k] = append(byKey[k], r)
	}
	for i := range out {
		for _, l := range labels[out[i].Scenario] {
			rs := byKey[key{out[i].Scenario, l}]
			out[i].Targets = append(out[i].Targets, targetStats(l, rs))
		}
		t := out[i].Targets
		for j := 1; j < len(t); j++ {
			t[j].RatioDelivered = ratio(t[0].Delivered.Median, t[j].Delivered.Median)
			t[j].RatioPerCPU = ratio(t[0].PerBrokerCPU.Median, t[j].PerBrokerCPU.Median)
			t[j].RatioMBps = ratio(t[0].MBps.Median, t[j].MBps.Median)
			if t[j].Ceiling {
				// The ceiling only takes requests in: compare what the
				// subject took in (produced / sent), as a fraction.
				t[j].RatioDelivered = ratio(t[0].Sent.Median, t[j].Sent.Median)
				t[j].RatioMBps = ratio(t[0].SendMBps.Median, t[j].SendMBps.Median)
			}
		}
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func targetStats(label string, rs []*Result) TargetStats {
	var del, sent, mb, smb, per, bcpu, gcpu, p50, p99, p999, ack, drop, rss []float64
	ts := TargetStats{Label: label}
	for _, r := range rs {
		rate := r.DeliveredRate
		mbps := r.DeliveredMBps
		if r.Config.Consumers == 0 {
			rate, mbps = r.SendRate, r.SendMBps
		}
		del = append(del, rate)
		sent = append(sent, r.SendRate)
		smb = append(smb, r.SendMBps)
		mb = append(mb, mbps)
		ts.Ceiling = ts.Ceiling || r.Config.Ceiling
		if r.MsgsPerBrokerCPU > 0 {
			per = append(per, r.MsgsPerBrokerCPU)
			bcpu = append(bcpu, r.BrokerCPUPct)
		}
		gcpu = append(gcpu, r.GenCPUPct)
		if r.Latency.Count > 0 {
			p50 = append(p50, float64(r.Latency.P50Us))
			p99 = append(p99, float64(r.Latency.P99Us))
			p999 = append(p999, float64(r.Latency.P999Us))
		}
		if r.AckLatency.Count > 0 {
			ack = append(ack, float64(r.AckLatency.P99Us))
		}
		drop = append(drop, r.DropPct)
		if r.BrokerRSSPeak > 0 {
			rss = append(rss, float64(r.BrokerRSSPeak))
		}
		ts.Errors += r.Errors
	}
	ts.Delivered, ts.Sent, ts.MBps, ts.PerBrokerCPU = statOf(del), statOf(sent), statOf(mb), statOf(per)
	ts.SendMBps = statOf(smb)
	ts.BrokerCPUPct, ts.GenCPUPct = statOf(bcpu), statOf(gcpu)
	ts.P50Us, ts.P99Us, ts.P999Us, ts.AckP99Us = statOf(p50), statOf(p99), statOf(p999), statOf(ack)
	ts.DropPct, ts.RSSPeak = statOf(drop), statOf(rss)
	// Curves of the round closest to the median throughput.
	best, bestD := -1, math.Inf(1)
	for i, r := range rs {
		if d := math.Abs(r.DeliveredRate - ts.Delivered.Median); d < bestD {
			best, bestD = i, d
		}
	}
	if best >= 0 {
		ts.Curve, ts.AckCurve = rs[best].Latency.Curve, rs[best].AckLatency.Curve
	}
	return ts
}

// newReport starts a report for this invocation.
func newReport() *Report {
	return &Report{Date: time.Now().UTC(), Hardware: hardware(), GoVersion: runtime.Version(),
		Command: "quartet-bench " + strings.Join(os.Args[1:], " ")}
}

// write writes results.json, results.md, chart.svg and chart.html into dir.
func (rep *Report) write(dir string) error {
	if dir == "" {
		return nil
	}
	rep.Comparisons = aggregate(rep.Runs)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	svg := rep.SVG()
	files := map[string][]byte{
		"results.json": append(j, '\n'),
		"results.md":   []byte(rep.Markdown()),
		"chart.svg":    []byte(svg),
		"chart.html":   []byte(rep.HTML(svg)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func fmtRate(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtStat(s Stat, f func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func fmtUs(v float64) string {
	if v == 0 {
		return "–"
	}
	return usStr(int64(v))
}

func fmtPct(v float64) string { return fmt.Sprintf("%.0f%%", v) }

func fmtDrop(v float64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2f%%", v)
}

func fmtMB(v float64) string { return fmt.Sprintf("%.1f", v) }

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// Markdown renders the report as tables.
func (rep *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# quartet-bench results\n\n%s · %s · %s\n\n`%s`\n\n", rep.Date.Format("2006-01-02 15:04 UTC"), rep.Hardware, rep.GoVersion, rep.Command)
	if len(rep.Comparisons) > 0 {
		b.WriteString("## Summary (median of rounds, min–max in brackets)\n\n")
		b.WriteString("| scenario | target | rounds | delivered msgs/s | MB/s | msgs (in+out) per broker CPU-s | broker CPU | generator CPU | p50 | p99 | p99.9 | ack p99 | dropped | × delivered | × per CPU |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range rep.Comparisons {
			for i, t := range c.Targets {
				rd, rc := "", ""
				if i > 0 {
					rd, rc = fmtRatio(t.RatioDelivered), fmtRatio(t.RatioPerCPU)
				}
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					c.Scenario, t.Label, t.Delivered.N, fmtStat(t.Delivered, fmtRate), fmtStat(t.MBps, fmtMB),
					fmtStat(t.PerBrokerCPU, fmtRate), fmtStat(t.BrokerCPUPct, fmtPct), fmtStat(t.GenCPUPct, fmtPct),
					fmtStat(t.P50Us, fmtUs), fmtStat(t.P99Us, fmtUs), fmtStat(t.P999Us, fmtUs), fmtStat(t.AckP99Us, fmtUs),
					fmtStat(t.DropPct, fmtDrop), rd, rc)
			}
		}
		b.WriteString("\n× columns: first target of the scenario divided by this one (medians). A ceiling row (a sink that reads and discards the same requests, pre-encoded; its delivered column is records written) is compared on what the subject took in: × delivered = subject's sent (produced) msgs/s ÷ the ceiling's, i.e. the fraction of the machine's ceiling.\n\n")
	}
	if len(rep.Idle) > 0 {
		b.WriteString("## Idle connections\n\n| target | proto | connections | broker RSS before | after | per connection | connect rate |\n|---|---|---|---|---|---|---|\n")
		for _, r := range rep.Idle {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s/s |\n", r.Label, r.Proto, r.Conns,
				fmtBytes(float64(r.RSSBefore)), fmtBytes(float64(r.RSSAfter)), fmtBytes(r.PerConnBytes), fmtRate(r.ConnectRate))
		}
		b.WriteString("\n")
	}
	if len(rep.Runs) > 0 {
		b.WriteString("## Runs\n\n| scenario | target | round | sent/s | delivered/s | MB/s | sent | received | dropped | p50 | p99 | p99.9 | ack p99 | broker CPU | msgs/broker CPU-s | gen CPU | broker RSS peak | load | errors |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rep.Runs {
			mb := r.DeliveredMBps
			if r.Config.Consumers == 0 {
				mb = r.SendMBps
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.1f | %d | %d | %d (%s) | %s | %s | %s | %s | %.0f%% | %s | %.0f%% | %s | %.1f | %d |\n",
				scenarioKey(r), r.Config.Label, r.Round, fmtRate(r.SendRate), fmtRate(r.DeliveredRate), mb,
				r.Sent, r.Received, r.Dropped, fmtDrop(r.DropPct),
				fmtUs(float64(r.Latency.P50Us)), fmtUs(float64(r.Latency.P99Us)), fmtUs(float64(r.Latency.P999Us)),
				fmtUs(float64(r.AckLatency.P99Us)), r.BrokerCPUPct, fmtRate(r.MsgsPerBrokerCPU), r.GenCPUPct,
				fmtBytes(float64(r.BrokerRSSPeak)), r.LoadAvg, r.Errors)
		}
		b.WriteString("\n")
	}
	if len(rep.Runs) > 0 {
		b.WriteString("load: the machine's 1-minute load average at the end of the run (2 cores; other work competes).\n\n")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// palette for targets, by position within a scenario.
var palette = []string{"#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2"}

// SVG renders throughput bars per scenario and target and latency percentile
// curves, self-contained.
func (rep *Report) SVG() string {
	comps := rep.Comparisons
	if comps == nil {
		comps = aggregate(rep.Runs)
	}
	const W = 960
	var b strings.Builder
	var y int
	var body strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&body, `<text x="16" y="24" font-size="16" font-weight="bold">quartet-bench · %s</text>`, esc(rep.Date.Format("2006-01-02 15:04 UTC")))
	fmt.Fprintf(&body, `<text x="16" y="40" font-size="11" fill="#555">%s</text>`, esc(rep.Hardware))
	y = 64
	fmt.Fprintf(&body, `<text x="16" y="%d" font-size="14" font-weight="bold">Throughput (median of rounds; whisker = min–max; [msgs in+out per broker CPU-second])</text>`, y)
	y += 12
	const labelW = 210
	barMax := W - labelW - 330
	for _, c := range comps {
		// Against a ceiling the comparison is of what went in (produced).
		metric, what := func(t TargetStats) Stat { return t.Delivered }, "delivered"
		for _, t := range c.Targets {
			if t.Ceiling {
				metric, what = func(t TargetStats) Stat { return t.Sent }, "produced"
			}
		}
		maxV := 0.0
		for _, t := range c.Targets {
			maxV = math.Max(maxV, math.Max(metric(t).Max, metric(t).Median))
		}
		if maxV == 0 {
			maxV = 1
		}
		y += 10
		fmt.Fprintf(&body, `<text x="16" y="%d" font-size="12" font-weight="bold">%s <tspan font-weight="normal" fill="#555">(%s msgs/s)</tspan></text>`, y+12, esc(c.Scenario), what)
		y += 16
		for i, t := range c.Targets {
			col := palette[i%len(palette)]
			m := metric(t)
			w := int(float64(barMax) * m.Median / maxV)
			fmt.Fprintf(&body, `<text x="%d" y="%d" font-size="11" text-anchor="end">%s</text>`, labelW-6, y+14, esc(t.Label))
			fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%d" height="14" fill="%s"/>`, labelW, y+3, max(w, 1), col)
			textX := labelW + max(w, 1) + 6
			if m.N > 1 {
				x1 := labelW + int(float64(barMax)*m.Min/maxV)
				x2 := labelW + int(float64(barMax)*m.Max/maxV)
				fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#111" stroke-width="1.5"/>`, x1, y+10, x2, y+10)
				textX = max(textX, x2+6)
			}
			txt := fmtRate(m.Median) + "/s"
			if t.PerBrokerCPU.N > 0 {
				txt += fmt.Sprintf(" [%s/CPU-s]", fmtRate(t.PerBrokerCPU.Median))
			}
			if i > 0 && t.RatioDelivered > 0 {
				txt += fmt.Sprintf("  %s÷%s = %s", c.Targets[0].Label, t.Label, fmtRatio(t.RatioDelivered))
			}
			fmt.Fprintf(&body, `<text x="%d" y="%d" font-size="11">%s</text>`, textX, y+14, esc(txt))
			y += 18
		}
	}
	// Latency curves: small multiples, two per row.
	var lat []Comparison
	for _, c := range comps {
		for _, t := range c.Targets {
			if len(t.Curve) > 0 || len(t.AckCurve) > 0 {
				lat = append(lat, c)
				break
			}
		}
	}
	if len(lat) > 0 {
		y += 30
		fmt.Fprintf(&body, `<text x="16" y="%d" font-size="14" font-weight="bold">Latency percentiles (publish→consume solid, publish→ack dashed; log scales)</text>`, y)
		y += 10
		pw, ph := 440, 200
		for i, c := range lat {
			x0 := 16 + (i%2)*(pw+40)
			y0 := y + (i/2)*(ph+50)
			body.WriteString(latencyPanel(c, x0+50, y0+20, pw-60, ph-40))
		}
		y += ((len(lat)+1)/2)*(ph+50) + 10
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`, W, y+20, W, y+20)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// nines maps a percentile to -log10(1-p/100), so 90→1, 99→2, 99.9→3.
func nines(p float64) float64 {
	if p >= 99.999 {
		return 5
	}
	return -math.Log10(1 - p/100)
}

func latencyPanel(c Comparison, x, y, w, h int) string {
	var b strings.Builder
	minUs, maxUs := math.Inf(1), 0.0
	for _, t := range c.Targets {
		for _, cv := range [][]CurvePoint{t.Curve, t.AckCurve} {
			for _, p := range cv {
				if p.Us > 0 {
					minUs = math.Min(minUs, float64(p.Us))
					maxUs = math.Max(maxUs, float64(p.Us))
				}
			}
		}
	}
	if maxUs == 0 {
		return ""
	}
	lo := math.Floor(math.Log10(minUs))
	hi := math.Ceil(math.Log10(maxUs))
	if hi <= lo {
		hi = lo + 1
	}
	const xmax = 4.0 // 99.99
	px := func(p float64) float64 { return float64(x) + float64(w)*math.Min(nines(p), xmax)/xmax }
	py := func(us float64) float64 {
		return float64(y+h) - float64(h)*(math.Log10(math.Max(us, 1))-lo)/(hi-lo)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" font-weight="bold">%s</text>`, x-40, y-8, html.EscapeString(c.Scenario))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`, x, y, w, h)
	for e := lo; e <= hi; e++ {
		yy := py(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, x, yy, x+w, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="9" text-anchor="end">%s</text>`, x-3, yy+3, usStr(int64(math.Pow(10, e))))
	}
	for _, p := range []float64{0, 90, 99, 99.9, 99.99} {
		xx := px(p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`, xx, y, xx, y+h)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" text-anchor="middle">p%g</text>`, xx, y+h+11, p)
	}
	for i, t := range c.Targets {
		col := palette[i%len(palette)]
		for k, cv := range [][]CurvePoint{t.Curve, t.AckCurve} {
			if len(cv) == 0 {
				continue
			}
			var pts []string
			for _, p := range cv {
				if p.Percentile > 99.99 {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Percentile), py(float64(p.Us))))
			}
			dash := ""
			if k == 1 {
				dash = ` stroke-dasharray="4 3"`
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"%s/>`, strings.Join(pts, " "), col, dash)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="%s" text-anchor="end">%s</text>`, x+w, y-8-12*(len(c.Targets)-1-i), col, html.EscapeString(t.Label))
	}
	return b.String()
}

// HTML wraps the chart and the Markdown tables into one self-contained page.
func (rep *Report) HTML(svg string) string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><meta charset=\"utf-8\"><title>quartet-bench results</title>")
	b.WriteString("<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:12px;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,td:nth-child(2){text-align:left}pre{background:#f6f6f6;padding:8px}</style></head><body>")
	b.WriteString(svg)
	// Render the Markdown tables as HTML tables.
	for _, block := range strings.Split(rep.Markdown(), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) >= 2 && strings.HasPrefix(lines[0], "|") && strings.HasPrefix(lines[1], "|---") {
			b.WriteString("<table>")
			for i, l := range lines {
				if i == 1 {
					continue
				}
				tag := "td"
				if i == 0 {
					tag = "th"
				}
				b.WriteString("<tr>")
				for _, cell := range strings.Split(strings.Trim(l, "|"), "|") {
					fmt.Fprintf(&b, "<%s>%s</%s>", tag, html.EscapeString(strings.TrimSpace(cell)), tag)
				}
				b.WriteString("</tr>")
			}
			b.WriteString("</table>")
			continue
		}
		text := strings.TrimSpace(block)
		if strings.HasPrefix(text, "# ") {
			fmt.Fprintf(&b, "<h1>%s</h1>", html.EscapeString(text[2:]))
		} else if strings.HasPrefix(text, "## ") {
			fmt.Fprintf(&b, "<h2>%s</h2>", html.EscapeString(text[3:]))
		} else if text != "" {
			fmt.Fprintf(&b, "<p>%s</p>", html.EscapeString(text))
		}
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

package bench

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fakeRun(scenario, label string, round int, delivered, cpu float64, p99 int64) *Result {
	h := newHist()
	for i := int64(1); i <= 100; i++ {
		recordMicros(h, time.Duration(i*p99/99)*time.Microsecond)
	}
	r := &Result{Config: Config{Proto: "mqtt", Scenario: scenario, Label: label, Consumers: 1, Producers: 4, Size: 100, Duration: 10 * time.Second},
		Round: round, DeliveredRate: delivered, SendRate: delivered, DeliveredMBps: delivered * 100 / 1e6,
		SentWindow: int64(delivered * 10), RecvWindow: int64(delivered * 10), BrokerCPU: cpu, BrokerCPUPct: cpu * 10}
	r.MsgsPerBrokerCPU = float64(r.SentWindow+r.RecvWindow) / cpu
	r.Latency = summarize(h)
	return r
}

func sampleReport() *Report {
	rep := &Report{Date: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC), Hardware: "test box", GoVersion: "go1.26", Command: "quartet-bench suite"}
	// A B A B A B: quartet 300k,330k,310k; mosquitto 100k,110k,90k.
	for round, v := range [][2]float64{{300e3, 100e3}, {330e3, 110e3}, {310e3, 90e3}} {
		rep.Runs = append(rep.Runs, fakeRun("mqtt-fanin-qos0-100", "quartet", round+1, v[0], 2, 2000))
		rep.Runs = append(rep.Runs, fakeRun("mqtt-fanin-qos0-100", "mosquitto", round+1, v[1], 6, 9000))
	}
	rep.Idle = []*IdleResult{{Proto: "mqtt", Label: "quartet", Conns: 10000, Connected: 10000, RSSBefore: 10 << 20, RSSAfter: 20 << 20, PerConnBytes: 1048.6, ConnectRate: 5000}}
	return rep
}

func TestAggregateRatios(t *testing.T) {
	cs := aggregate(sampleReport().Runs)
	if len(cs) != 1 || len(cs[0].Targets) != 2 {
		t.Fatalf("comparisons: %+v", cs)
	}
	q, m := cs[0].Targets[0], cs[0].Targets[1]
	if q.Label != "quartet" || q.Delivered.Median != 310e3 || q.Delivered.Min != 300e3 || q.Delivered.Max != 330e3 || q.Delivered.N != 3 {
		t.Fatalf("quartet stats %+v", q.Delivered)
	}
	if math.Abs(m.RatioDelivered-310.0/100) > 1e-9 {
		t.Fatalf("ratio delivered %v", m.RatioDelivered)
	}
	// per CPU: quartet 6.2M/2 = 3.1M; mosquitto 2M/6 = 333k → 9.3×
	if math.Abs(m.RatioPerCPU-3.1e6/(2e6/6)) > 1e-6 {
		t.Fatalf("ratio per CPU %v", m.RatioPerCPU)
	}
	if len(q.Curve) == 0 || q.P99Us.N != 3 {
		t.Fatalf("latency not aggregated: %+v", q)
	}
}

func TestReportFiles(t *testing.T) {
	dir := t.TempDir()
	rep := sampleReport()
	if err := rep.write(dir); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil || len(back.Runs) != 6 || len(back.Comparisons) != 1 {
		t.Fatalf("results.json: %v, %d runs", err, len(back.Runs))
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, want := range []string{"| mqtt-fanin-qos0-100 | mosquitto | 3 | 100.0k (90.0k–110.0k)", "3.10×", "test box", "## Idle connections", "1.0 KiB"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "chart.svg"))
	wellFormed(t, svg)
	for _, want := range []string{"<svg", "quartet", "mosquitto", "polyline", "test box"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart.svg lacks %q", want)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "chart.html"))
	if !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "<table>") || strings.Contains(string(page), "<script") {
		t.Errorf("chart.html is not a self-contained page with chart and tables")
	}
	// Re-rendering from results.json gives the same tables.
	dir2 := t.TempDir()
	if err := runReportCmd([]string{"--in", filepath.Join(dir, "results.json"), "--out", dir2}); err != nil {
		t.Fatal(err)
	}
	md2, _ := os.ReadFile(filepath.Join(dir2, "results.md"))
	if string(md2) != string(md) {
		t.Errorf("re-rendered results.md differs")
	}
}

func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG not well-formed: %v", err)
		}
	}
}

func TestEmptyReportRenders(t *testing.T) {
	rep := &Report{Date: time.Now()}
	wellFormed(t, []byte(rep.SVG()))
	if !strings.Contains(rep.Markdown(), "# quartet-bench results") {
		t.Fatal("no title")
	}
}

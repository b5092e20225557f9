package bench

import (
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	p := newPayload(100)
	fillPayload(p, 1234567890123, 3, 42)
	ts, err := payloadTime(p)
	if err != nil || ts != 1234567890123 {
		t.Fatalf("payloadTime = %d, %v", ts, err)
	}
	if p[99] != 0x2a {
		t.Fatalf("filler not set")
	}
	if _, err := payloadTime(p[:15]); err == nil {
		t.Fatal("short payload accepted")
	}
}

func TestRecordClampsAndSummarizes(t *testing.T) {
	h := newHist()
	recordMicros(h, 0)              // clamps to 1 µs
	recordMicros(h, 20*time.Minute) // clamps to the ceiling
	for i := 1; i <= 1000; i++ {
		recordMicros(h, time.Duration(i)*time.Millisecond)
	}
	l := summarize(h)
	if l.Count != 1002 {
		t.Fatalf("count %d", l.Count)
	}
	// p50 of 1..1000 ms (plus one tiny and one huge value) is ~500 ms.
	if l.P50Us < 495_000 || l.P50Us > 505_000 {
		t.Fatalf("p50 %d µs", l.P50Us)
	}
	if l.P99Us < 985_000 || l.P99Us > 1_000_500 {
		t.Fatalf("p99 %d µs", l.P99Us)
	}
	if l.MaxUs < histHighestMicros*99/100 {
		t.Fatalf("max %d not clamped to the ceiling", l.MaxUs)
	}
	if len(l.Curve) != len(curvePercentiles) {
		t.Fatalf("curve has %d points", len(l.Curve))
	}
	for i := 1; i < len(l.Curve); i++ {
		if l.Curve[i].Us < l.Curve[i-1].Us {
			t.Fatalf("curve not monotonic at %v", l.Curve[i])
		}
	}
	if l0 := summarize(nil); l0.Count != 0 || l0.Curve != nil || summarize(newHist()).Count != 0 {
		t.Fatal("empty histogram should summarize to zero")
	}
}

func TestHistogramEncodeMerge(t *testing.T) {
	a, b := newHist(), newHist()
	for i := range 100 {
		recordMicros(a, time.Duration(i+1)*time.Microsecond)
		recordMicros(b, time.Duration(i+1)*time.Millisecond)
	}
	ea, err := encodeHist(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := encodeHist(b)
	m := mergeHists(ea, eb, "")
	if m.TotalCount() != 200 {
		t.Fatalf("merged count %d", m.TotalCount())
	}
	if m.Max() < 99_000 {
		t.Fatalf("merged max %d", m.Max())
	}
	if _, err := decodeHist("not a histogram"); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestRecorderSet(t *testing.T) {
	var s recorderSet
	r1, r2 := s.add(), s.add()
	r1.record(time.Millisecond)
	r2.record(2 * time.Millisecond)
	if n := s.merged().TotalCount(); n != 2 {
		t.Fatalf("merged %d", n)
	}
}

func TestStatOf(t *testing.T) {
	cases := []struct {
		in   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{3}, Stat{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, Stat{3, 1, 5, 3}},
		{[]float64{4, 1, 3, 2}, Stat{2.5, 1, 4, 4}},
	}
	for _, c := range cases {
		if got := statOf(c.in); got != c.want {
			t.Errorf("statOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestPacerOpenLoop(t *testing.T) {
	start := time.Now()
	p := &pacer{start: start, end: start.Add(50 * time.Millisecond), interval: 10 * time.Millisecond}
	var n int
	var last int64
	for {
		ts, ok := p.next()
		if !ok {
			break
		}
		if n > 0 && ts-last != int64(10*time.Millisecond) {
			t.Fatalf("interval %v", time.Duration(ts-last))
		}
		last = ts
		n++
	}
	if n != 5 {
		t.Fatalf("%d sends in 50 ms at 100/s, want 5", n)
	}
}

func TestParseProcStat(t *testing.T) {
	line := []byte("1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 4 0 100 1000000 200 18446744073709551615\n")
	d, err := parseStatCPU(line)
	if err != nil || d != 4*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 4s", d, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	rss, hwm := parseStatusMem([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	if rss != 1<<20 || hwm != 2<<20 {
		t.Fatalf("rss %d hwm %d", rss, hwm)
	}
	if _, err := procCPU(0); err != nil {
		t.Fatalf("own /proc: %v", err)
	}
	if r, _, err := procMem(0); err != nil || r <= 0 {
		t.Fatalf("own RSS %d, %v", r, err)
	}
}

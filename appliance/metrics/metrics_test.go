package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	k := r.Counter(BytesInTotal, "Bytes received.", L("protocol", "kafka"))
	a := r.Counter(BytesInTotal, "Bytes received.", L("protocol", "amqp"))
	g := r.Gauge(Connections, "Open connections.", L("protocol", "mqtt"))
	h := r.Histogram(FsyncSeconds, "fdatasync latency.", []float64{0.001, 0.01})
	k.Add(100)
	a.Inc()
	g.Inc()
	g.Inc()
	g.Dec()
	h.Observe(0.0005)
	h.Observe(0.005)
	h.Observe(1)
	r.Register(func(e *Emitter) {
		e.Gauge(ConsumerLag, "Messages behind.", 7, L("group", `we"ird\`+"\n"), L("topic", "t"))
	})
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	want := `# HELP quartet_bytes_in_total Bytes received.
# TYPE quartet_bytes_in_total counter
quartet_bytes_in_total{protocol="kafka"} 100
quartet_bytes_in_total{protocol="amqp"} 1
# HELP quartet_connections Open connections.
# TYPE quartet_connections gauge
quartet_connections{protocol="mqtt"} 1
# HELP quartet_consumer_lag Messages behind.
# TYPE quartet_consumer_lag gauge
quartet_consumer_lag{group="we\"ird\\\n",topic="t"} 7
# HELP quartet_fsync_seconds fdatasync latency.
# TYPE quartet_fsync_seconds histogram
quartet_fsync_seconds_bucket{le="0.001"} 1
quartet_fsync_seconds_bucket{le="0.01"} 2
quartet_fsync_seconds_bucket{le="+Inf"} 3
quartet_fsync_seconds_sum 1.0055
quartet_fsync_seconds_count 3
`
	if sb.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", sb.String(), want)
	}
	e := r.Gather()
	if v, ok := e.Value(BytesInTotal, L("protocol", "kafka")); !ok || v != 100 {
		t.Fatal(v, ok)
	}
	if v, ok := e.Value(FsyncSeconds + "_count"); !ok || v != 3 {
		t.Fatal(v, ok)
	}
}

func TestDuplicatePanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("x_total", "", L("a", "1"))
	for _, f := range []func(){
		func() { r.Counter("x_total", "", L("a", "1")) },
		func() { r.Gauge("x_total", "", L("a", "2")) },
		func() { r.Counter("bad name", "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func TestEmitterTypeClash(t *testing.T) {
	r := NewRegistry()
	r.Register(func(e *Emitter) { e.Counter("y", "", 1); e.Gauge("y", "", 1) })
	if err := r.WriteText(&strings.Builder{}); err == nil {
		t.Fatal("type clash not reported")
	}
}

func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "")
	g := r.Gauge("g", "")
	h := r.Histogram("h", "", LatencyBuckets)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Inc()
				g.Add(1)
				h.Observe(0.001)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if c.Value() != 4000 || g.Value() != 4000 || s.Count() != 4000 {
		t.Fatal(c.Value(), g.Value(), s.Count())
	}
}

func TestProcess(t *testing.T) {
	r := NewRegistry()
	RegisterProcess(r)
	e := r.Gather()
	if v, ok := e.Value("go_goroutines"); !ok || v < 1 {
		t.Fatal(v, ok)
	}
}

func TestObserveAllocs(t *testing.T) {
	h := NewHistogram(LatencyBuckets)
	c := &Counter{}
	if n := testing.AllocsPerRun(100, func() { h.Observe(0.002); c.Inc() }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	h := NewHistogram(LatencyBuckets)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(float64(i%1000) * 1e-5)
	}
}

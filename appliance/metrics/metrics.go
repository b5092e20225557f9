package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// L makes a Label.
func L(name, value string) Label { return Label{name, value} }

// Kind is a metric type.
type Kind uint8

const (
	KindCounter Kind = iota + 1
	KindGauge
	KindHistogram
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "untyped"
}

// Collector emits samples at scrape time.
type Collector func(e *Emitter)

// Registry holds owned metrics and collectors. Safe for concurrent use.
type Registry struct {
	mu         sync.Mutex
	owned      []func(e *Emitter)
	keys       map[string]Kind // name -> kind, for owned metrics
	seen       map[string]bool // name+labels of owned metrics
	collectors []Collector
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{keys: map[string]Kind{}, seen: map[string]bool{}}
}

func (r *Registry) own(name string, kind Kind, labels []Label, emit func(e *Emitter)) {
	if !validName(name) {
		panic("BUG: metrics: invalid metric name " + strconv.Quote(name))
	}
	for _, l := range labels {
		if !validName(l.Name) || strings.Contains(l.Name, ":") || l.Name == "le" {
			panic("BUG: metrics: invalid label name " + strconv.Quote(l.Name))
		}
	}
	id := name + "{" + labelString(labels) + "}"
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[name]; ok && k != kind {
		panic(fmt.Sprintf("BUG: metrics: %s registered as %v and %v", name, k, kind))
	}
	if r.seen[id] {
		panic("BUG: metrics: duplicate registration of " + id)
	}
	r.keys[name] = kind
	r.seen[id] = true
	r.owned = append(r.owned, emit)
}

// Counter registers and returns a monotonically increasing counter.
func (r *Registry) Counter(name, help string, labels ...Label) *Counter {
	c := &Counter{}
	labels = append([]Label(nil), labels...)
	r.own(name, KindCounter, labels, func(e *Emitter) { e.Counter(name, help, float64(c.Value()), labels...) })
	return c
}

// Gauge registers and returns a gauge.
func (r *Registry) Gauge(name, help string, labels ...Label) *Gauge {
	g := &Gauge{}
	labels = append([]Label(nil), labels...)
	r.own(name, KindGauge, labels, func(e *Emitter) { e.Gauge(name, help, g.Value(), labels...) })
	return g
}

// Histogram registers and returns a histogram with the given upper bounds
// (sorted ascending; +Inf is implicit).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...Label) *Histogram {
	h := NewHistogram(buckets)
	labels = append([]Label(nil), labels...)
	r.own(name, KindHistogram, labels, func(e *Emitter) { e.Histogram(name, help, h.Snapshot(), labels...) })
	return h
}

// Register adds a collector called on every scrape.
func (r *Registry) Register(c Collector) {
	r.mu.Lock()
	r.collectors = append(r.collectors, c)
	r.mu.Unlock()
}

// Gather runs every owned metric and collector into a new Emitter.
func (r *Registry) Gather() *Emitter {
	r.mu.Lock()
	owned := append([]func(*Emitter){}, r.owned...)
	cols := append([]Collector(nil), r.collectors...)
	r.mu.Unlock()
	e := newEmitter()
	for _, f := range owned {
		f(e)
	}
	for _, c := range cols {
		c(e)
	}
	return e
}

// WriteText writes every metric in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	return r.Gather().WriteText(w)
}

// ContentType is the Content-Type of WriteText's output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (may be negative).
func (g *Gauge) Add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Histogram counts observations into buckets. Observe is lock-free and
// does not allocate.
type Histogram struct {
	bounds  []float64
	counts  []atomic.Uint64 // len(bounds)+1, last is +Inf
	sumBits atomic.Uint64
}

// NewHistogram returns an unregistered histogram (its Snapshot can be
// emitted by a collector).
func NewHistogram(buckets []float64) *Histogram {
	if !sort.Float64sAreSorted(buckets) {
		panic("BUG: metrics: histogram buckets not sorted")
	}
	return &Histogram{bounds: append([]float64(nil), buckets...), counts: make([]atomic.Uint64, len(buckets)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound >= v
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// HistogramSnapshot is a histogram's state: Counts[i] observations fell in
// (Bounds[i-1], Bounds[i]]; Counts[len(Bounds)] is the +Inf bucket. Counts
// are per bucket, not cumulative.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

// Count returns the total number of observations.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Snapshot copies the current state.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sum: math.Float64frombits(h.sumBits.Load())}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	return s
}

// ExponentialBuckets returns n bounds start, start*factor, ...
func ExponentialBuckets(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// LinearBuckets returns n bounds start, start+width, ...
func LinearBuckets(start, width float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start + float64(i)*width
	}
	return b
}

// Emitter accumulates samples for one scrape, grouped into families.
type Emitter struct {
	fams  map[string]*family
	order []string
	err   error
}

type family struct {
	name, help string
	kind       Kind
	lines      []string
}

func newEmitter() *Emitter { return &Emitter{fams: map[string]*family{}} }

func (e *Emitter) fam(name, help string, kind Kind) *family {
	f, ok := e.fams[name]
	if !ok {
		if !validName(name) {
			e.err = fmt.Errorf("metrics: invalid metric name %q", name)
			return nil
		}
		f = &family{name: name, help: help, kind: kind}
		e.fams[name] = f
		e.order = append(e.order, name)
		return f
	}
	if f.kind != kind {
		e.err = fmt.Errorf("metrics: %s emitted as %v and %v", name, f.kind, kind)
		return nil
	}
	return f
}

// Counter emits one counter sample.
func (e *Emitter) Counter(name, help string, v float64, labels ...Label) {
	if f := e.fam(name, help, KindCounter); f != nil {
		f.lines = append(f.lines, sample(name, labels, v))
	}
}

// Gauge emits one gauge sample.
func (e *Emitter) Gauge(name, help string, v float64, labels ...Label) {
	if f := e.fam(name, help, KindGauge); f != nil {
		f.lines = append(f.lines, sample(name, labels, v))
	}
}

// Histogram emits one histogram (its _bucket, _sum and _count samples).
func (e *Emitter) Histogram(name, help string, s HistogramSnapshot, labels ...Label) {
	f := e.fam(name, help, KindHistogram)
	if f == nil {
		return
	}
	if len(s.Counts) != len(s.Bounds)+1 {
		e.err = fmt.Errorf("metrics: %s: %d counts for %d bounds", name, len(s.Counts), len(s.Bounds))
		return
	}
	var cum uint64
	le := make([]Label, len(labels)+1)
	copy(le, labels)
	for i, c := range s.Counts {
		cum += c
		bound := "+Inf"
		if i < len(s.Bounds) {
			bound = formatFloat(s.Bounds[i])
		}
		le[len(labels)] = Label{"le", bound}
		f.lines = append(f.lines, sample(name+"_bucket", le, float64(cum)))
	}
	f.lines = append(f.lines, sample(name+"_sum", labels, s.Sum), sample(name+"_count", labels, float64(cum)))
}

// Value returns the value of the first sample whose name and labels match
// exactly (histograms: use name_count, name_sum). For tests and doctor.
func (e *Emitter) Value(name string, labels ...Label) (float64, bool) {
	prefix := name
	if len(labels) > 0 {
		prefix += "{" + labelString(labels) + "}"
	}
	prefix += " "
	for _, fn := range e.order {
		for _, l := range e.fams[fn].lines {
			if strings.HasPrefix(l, prefix) {
				v, err := strconv.ParseFloat(strings.TrimSpace(l[len(prefix):]), 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

// WriteText writes the families sorted by name.
func (e *Emitter) WriteText(w io.Writer) error {
	if e.err != nil {
		return e.err
	}
	names := append([]string(nil), e.order...)
	sort.Strings(names)
	bw := bufio.NewWriter(w)
	for _, n := range names {
		f := e.fams[n]
		if f.help != "" {
			bw.WriteString("# HELP " + n + " " + escapeHelp(f.help) + "\n")
		}
		bw.WriteString("# TYPE " + n + " " + f.kind.String() + "\n")
		for _, l := range f.lines {
			bw.WriteString(l)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}

func sample(name string, labels []Label, v float64) string {
	if len(labels) == 0 {
		return name + " " + formatFloat(v)
	}
	return name + "{" + labelString(labels) + "} " + formatFloat(v)
}

func labelString(labels []Label) string {
	var b strings.Builder
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(l.Value))
		b.WriteByte('"')
	}
	return b.String()
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

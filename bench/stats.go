package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms hold microseconds from 1 µs to 10 minutes with three
// significant digits.
const (
	histLowestMicros  = 1
	histHighestMicros = int64(10 * time.Minute / time.Microsecond)
	histSigFigs       = 3
	// payloadHeaderBytes is the send timestamp and the producer/sequence word.
	payloadHeaderBytes = 16
)

// ErrShortPayload is returned when a received message cannot hold the header.
var ErrShortPayload = errors.New("bench: payload shorter than 16-byte header")

// newHist returns an empty latency histogram.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowestMicros, histHighestMicros, histSigFigs)
}

// recordMicros records d into h, clamping to the histogram's range.
func recordMicros(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < histLowestMicros {
		us = histLowestMicros
	}
	if us > histHighestMicros {
		us = histHighestMicros
	}
	_ = h.RecordValue(us)
}

// fillPayload writes the header into p (len(p) >= 16) and fills the rest once.
func fillPayload(p []byte, ts int64, producer, seq uint64) {
	binary.LittleEndian.PutUint64(p[0:8], uint64(ts))
	binary.LittleEndian.PutUint64(p[8:16], producer<<40|seq&(1<<40-1))
}

// newPayload returns a payload of size bytes with filler set.
func newPayload(size int) []byte {
	p := make([]byte, size)
	for i := payloadHeaderBytes; i < size; i++ {
		p[i] = 0x2a
	}
	return p
}

// payloadTime returns the send timestamp (unix ns) stored in p.
func payloadTime(p []byte) (int64, error) {
	if len(p) < payloadHeaderBytes {
		return 0, ErrShortPayload
	}
	return int64(binary.LittleEndian.Uint64(p[0:8])), nil
}

// Latency summarises a histogram in microseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MeanUs float64 `json:"mean_us"`
	P50Us  int64   `json:"p50_us"`
	P90Us  int64   `json:"p90_us"`
	P99Us  int64   `json:"p99_us"`
	P999Us int64   `json:"p999_us"`
	MaxUs  int64   `json:"max_us"`
	// Curve is the percentile curve for charts: value at each of curveQuantiles.
	Curve []CurvePoint `json:"curve,omitempty"`
}

// CurvePoint is one point of a latency percentile curve.
type CurvePoint struct {
	Percentile float64 `json:"p"`
	Us         int64   `json:"us"`
}

// curvePercentiles are the points of the latency curves in reports.
var curvePercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100}

// summarize computes a Latency from h (nil or empty gives a zero Latency).
func summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	l := Latency{
		Count:  h.TotalCount(),
		MeanUs: h.Mean(),
		P50Us:  h.ValueAtQuantile(50),
		P90Us:  h.ValueAtQuantile(90),
		P99Us:  h.ValueAtQuantile(99),
		P999Us: h.ValueAtQuantile(99.9),
		MaxUs:  h.Max(),
	}
	for _, p := range curvePercentiles {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		l.Curve = append(l.Curve, CurvePoint{Percentile: p, Us: v})
	}
	return l
}

// encodeHist serialises h for the pipe between processes.
func encodeHist(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("bench: encode histogram: %w", err)
	}
	return string(b), nil
}

// decodeHist is the inverse of encodeHist; "" gives an empty histogram.
func decodeHist(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return newHist(), nil
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("bench: decode histogram: %w", err)
	}
	return h, nil
}

// recorder is one consumer's (or publisher's) histogram, safe for one writer
// and a concurrent snapshotting reader.
type recorder struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newRecorder() *recorder { return &recorder{h: newHist()} }

func (r *recorder) record(d time.Duration) {
	r.mu.Lock()
	recordMicros(r.h, d)
	r.mu.Unlock()
}

// mergeInto adds r's values into dst.
func (r *recorder) mergeInto(dst *hdrhistogram.Histogram) {
	r.mu.Lock()
	dst.Merge(r.h)
	r.mu.Unlock()
}

// recorderSet is a growable set of recorders merged on demand.
type recorderSet struct {
	mu  sync.Mutex
	all []*recorder
}

func (s *recorderSet) add() *recorder {
	r := newRecorder()
	s.mu.Lock()
	s.all = append(s.all, r)
	s.mu.Unlock()
	return r
}

func (s *recorderSet) merged() *hdrhistogram.Histogram {
	h := newHist()
	s.mu.Lock()
	all := append([]*recorder(nil), s.all...)
	s.mu.Unlock()
	for _, r := range all {
		r.mergeInto(h)
	}
	return h
}

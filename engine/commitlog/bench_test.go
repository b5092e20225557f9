package commitlog

import (
	"testing"

	"quartet/segment"
)

// BenchmarkScanInterleaved reads one of 4 interleaved queues of 1 KiB
// messages, 32 at a time (a pull's worth).
func BenchmarkScanInterleaved(b *testing.B) {
	dir := b.TempDir()
	t := &testing.T{}
	e, s := openAll(t, dir)
	defer closeAll(t, e, s)
	s.CreateTopic("t", 4)
	body := make([]byte, 1024)
	const n = 4096
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		if err := s.Append("t", i%4, []Message{{Value: body}}, CompleterFunc(func(_, _ int64, err error) { done <- err })); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	q := s.Queue("t", 1)
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(32 * 1024)
	b.ResetTimer()
	off := int64(0)
	for i := 0; i < b.N; i++ {
		got := 0
		next, err := q.Scan(off, 32, &buf, func(_, _ int64, r *segment.Record) error {
			got += len(r.Value)
			return nil
		})
		if err != nil || got != 32*1024 {
			b.Fatalf("scan: %d bytes, err %v", got, err)
		}
		if off = next; off+32 > q.Max() {
			off = 0
		}
	}
}

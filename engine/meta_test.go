package engine

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"quartet/segment"
)

// TestMetaCompactsOnline overwrites a few keys until the log is mostly dead,
// compacts while other goroutines keep writing, and checks that the log
// shrank, that the live state is unchanged, and that both a clean reopen and
// a crash image (copied while open) replay to the same state.
func TestMetaCompactsOnline(t *testing.T) {
	for _, flush := range []segment.FlushMode{segment.FlushSync, segment.FlushAsync} {
		t.Run(string(flush), func(t *testing.T) {
			w, err := segment.NewWriter(segment.IOSync, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			dir := t.TempDir()
			cfg := segment.Config{SegmentBytes: 64 << 10, Flush: flush}
			m, err := openMeta(filepath.Join(dir, "meta"), w, cfg, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			m.compactBytesMin = 256 << 10
			put := func(g, i int, wg *sync.WaitGroup) {
				wg.Add(1)
				key := fmt.Sprintf("g%d-key%d", g, i%50)
				if i%7 == 3 {
					m.Delete("k", key, func(error) { wg.Done() })
					return
				}
				m.Put("k", key, fmt.Appendf(nil, "value %d %d", g, i), func(err error) {
					if err != nil {
						t.Error(err)
					}
					wg.Done()
				})
			}
			var wg sync.WaitGroup
			for i := 0; i < 6000; i++ {
				put(0, i, &wg)
			}
			wg.Wait()
			before := m.log.Stats()
			// Compact while two writers keep going.
			var writers sync.WaitGroup
			for g := 1; g <= 2; g++ {
				writers.Add(1)
				go func() {
					defer writers.Done()
					var wg sync.WaitGroup
					for i := 0; i < 500; i++ {
						put(g, i, &wg)
					}
					wg.Wait()
				}()
			}
			if err := m.compactOnline(); err != nil {
				t.Fatal(err)
			}
			writers.Wait()
			after := m.log.Stats()
			if after.Bytes >= before.Bytes/2 || m.log.StartOffset() == 0 {
				t.Fatalf("log not compacted: %+v -> %+v, start %d", before, after, m.log.StartOffset())
			}
			want := snapshotNS(m, "k")
			if len(want) == 0 {
				t.Fatal("no live keys")
			}

			crash := t.TempDir()
			if err := m.log.SyncFrom(0); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(crash, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			if err := m.log.Close(); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{dir, crash} {
				r, err := openMeta(filepath.Join(d, "meta"), w, cfg, slog.Default())
				if err != nil {
					t.Fatal(err)
				}
				got := snapshotNS(r, "k")
				r.log.Close()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: replayed %d keys, want %d:\n%v\n%v", d, len(got), len(want), got, want)
				}
			}
		})
	}
}

func snapshotNS(m *Meta, ns string) map[string]string {
	out := map[string]string{}
	m.Range(ns, func(k string, v []byte) bool {
		out[k] = string(v)
		return true
	})
	return out
}

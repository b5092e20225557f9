package metrics

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// RegisterProcess adds Go runtime and process metrics: go_goroutines,
// go_memory_total_bytes, go_heap_objects_bytes, go_gc_cycles_total,
// process_open_fds, process_resident_memory_bytes,
// process_start_time_seconds.
func RegisterProcess(r *Registry) {
	start := float64(time.Now().UnixNano()) / 1e9
	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	pageSize := float64(os.Getpagesize())
	r.Register(func(e *Emitter) {
		s := append([]metrics.Sample(nil), samples...)
		metrics.Read(s)
		val := func(i int) float64 {
			if s[i].Value.Kind() == metrics.KindUint64 {
				return float64(s[i].Value.Uint64())
			}
			return 0
		}
		e.Gauge("go_goroutines", "Goroutines that currently exist.", val(0))
		e.Gauge("go_memory_total_bytes", "Memory mapped by the Go runtime.", val(1))
		e.Gauge("go_heap_objects_bytes", "Memory occupied by live and unswept heap objects.", val(2))
		e.Counter("go_gc_cycles_total", "Completed GC cycles.", val(3))
		if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
			e.Gauge("process_open_fds", "Open file descriptors.", float64(len(ents)))
		}
		if b, err := os.ReadFile("/proc/self/statm"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 1 {
				if n, err := strconv.ParseFloat(f[1], 64); err == nil {
					e.Gauge("process_resident_memory_bytes", "Resident set size.", n*pageSize)
				}
			}
		}
		e.Gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.", start)
	})
}

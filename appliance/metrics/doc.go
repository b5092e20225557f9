// Package metrics is a small Prometheus registry with no third-party
// dependency: counters, gauges and histograms owned by the registry, plus
// collectors — functions called at scrape time that read a snapshot of some
// subsystem's own counters and emit samples. Output is the Prometheus text
// exposition format 0.0.4, served by appliance/httpapi at /metrics.
//
// # Owned metrics (hot path: one atomic add, no allocation)
//
//	reg := metrics.NewRegistry()
//	in := reg.Counter(metrics.BytesInTotal, "Bytes received from clients.", metrics.L("protocol", "kafka"))
//	in.Add(uint64(len(frame)))
//	conns := reg.Gauge(metrics.Connections, "Open client connections.", metrics.L("protocol", "kafka"))
//	conns.Inc(); conns.Dec()
//	fsync := reg.Histogram(metrics.FsyncSeconds, "fdatasync latency.", metrics.LatencyBuckets)
//	fsync.Observe(d.Seconds())
//
// The same name may be registered several times with different label values
// (one Counter per protocol); they form one family. Registering the same
// name and labels twice, or one name with two types, panics (a bug).
//
// # Collectors (for subsystems that keep their own counters)
//
// A collector reads a snapshot and emits samples; it runs on the scrape
// goroutine, so it must only read (atomics, or a lock held briefly):
//
//	reg.Register(func(e *metrics.Emitter) {
//		s := writer.Stats() // e.g. segment.WriterStats snapshot
//		e.Counter(metrics.AppendsTotal, "Appends completed.", float64(s.Appends))
//		e.Counter(metrics.FsyncsTotal, "fdatasync calls.", float64(s.Fsyncs))
//		e.Gauge(metrics.AppendsPerFsync, "Appends per fdatasync since start.", float64(s.Appends)/max(1, float64(s.Fsyncs)))
//		for _, g := range groups { e.Gauge(metrics.ConsumerLag, "Messages behind.", g.Lag, metrics.L("protocol", "kafka"), metrics.L("group", g.Name), metrics.L("topic", g.Topic)) }
//		e.Histogram(metrics.FsyncSeconds, "fdatasync latency.", s.FsyncHist) // a HistogramSnapshot
//	})
//
// Names for the appliance's standard metrics are the constants in names.go;
// use them so dashboards stay stable. RegisterProcess adds go_* and
// process_* metrics; package lag (appliance/metrics/lag) adds consumer lag
// per group and topic from the engine's committed offsets.
package metrics

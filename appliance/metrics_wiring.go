package appliance

import (
	"log/slog"

	"quartet/appliance/metrics"
	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
	"quartet/wire/mqtt"
)

// registerEngineMetrics exposes the engine's and the writer's counters.
func registerEngineMetrics(reg *metrics.Registry, eng *engine.Engine) {
	reg.Register(func(e *metrics.Emitter) {
		st := eng.Stats()
		w := st.Writer
		e.Counter(metrics.AppendsTotal, "Write requests completed by the segment writer.", float64(w.Requests))
		e.Counter(metrics.FsyncsTotal, "fdatasync calls by the segment writer.", float64(w.Fsyncs))
		perFsync := 0.0
		if w.Fsyncs > 0 {
			perFsync = float64(w.SyncedReqs) / float64(w.Fsyncs)
		}
		e.Gauge(metrics.AppendsPerFsync, "Synced appends per fdatasync since start (group commit).", perFsync)
		e.Counter("quartet_writer_bytes_total", "Bytes written by the segment writer.", float64(w.Bytes))
		e.Counter("quartet_writer_failures_total", "Write requests that failed.", float64(w.Failures))
		e.Gauge(metrics.Topics, "Topics.", float64(st.Topics))
		e.Gauge(metrics.Partitions, "Partitions.", float64(st.Partitions))
		e.Gauge(metrics.Segments, "Segment files.", float64(st.Segments))
		e.Gauge(metrics.SegmentBytes, "Bytes in segment files.", float64(st.Bytes))
		if x, ok := segment.ExtStats(eng.Writer()); ok {
			e.Histogram(metrics.FsyncSeconds, "fdatasync latency.", fsyncHistogram(x, w))
		}
	})
}

// registerNetMetrics exposes the listeners' counters per protocol.
func registerNetMetrics(reg *metrics.Registry, np *netpoll.Server) {
	reg.Register(func(e *metrics.Emitter) {
		for _, s := range np.Stats() {
			l := []metrics.Label{metrics.L("protocol", s.Protocol), metrics.L("listener", s.Addr), metrics.L("transport", s.Transport)}
			e.Gauge(metrics.Connections, "Open client connections.", float64(s.ConnsOpen), l...)
			e.Counter(metrics.ConnectionsAcceptedTotal, "Connections accepted.", float64(s.ConnsAccepted), l...)
			e.Counter(metrics.ConnectionsRejectedTotal, "Connections refused over the limit.", float64(s.ConnsRejected), l...)
			e.Counter(metrics.BytesInTotal, "Bytes received from clients.", float64(s.BytesIn), l...)
			e.Counter(metrics.BytesOutTotal, "Bytes sent to clients.", float64(s.BytesOut), l...)
			e.Counter("quartet_frames_in_total", "Frames received.", float64(s.FramesIn), l...)
			e.Counter("quartet_frames_out_total", "Frames sent.", float64(s.FramesOut), l...)
			e.Counter("quartet_read_pauses_total", "Reads paused by the outbound high-water mark.", float64(s.Pauses), l...)
			e.Counter(metrics.PausesTotal, "Reads paused by the global memory high-water mark.", float64(s.MemoryPauses), l...)
			e.Counter(metrics.DropsTotal, "Messages dropped to slow consumers.", float64(s.Drops), l...)
			e.Counter("quartet_sendfile_bytes_total", "Bytes sent by sendfile.", float64(s.SendfileBytes), l...)
		}
	})
}

// messageCounter is the method every wire server gets for the per-protocol
// message counters (issue 8): in = messages accepted from publishers and
// producers, out = messages delivered to consumers, per delivered copy.
type messageCounter interface {
	MessageCounts() (in, out uint64)
}

// countedServer is one protocol server that counts its messages.
type countedServer struct {
	protocol string // the netpoll protocol label: kafka, amqp, mqtt, rocketmq
	mc       messageCounter
}

// countMessages keeps srv for /metrics when it has MessageCounts; a server
// without it gets no quartet_messages_* series (logged once at start).
func (p *protocolSet) countMessages(protocol string, srv any, logger *slog.Logger) {
	mc, ok := srv.(messageCounter)
	if !ok {
		logger.Warn("protocol server has no message counters; quartet_messages_in_total/out_total not exported for it", "protocol", protocol)
		return
	}
	p.counted = append(p.counted, countedServer{protocol: protocol, mc: mc})
}

// registerMessageMetrics exposes the messages in and out of every counted
// protocol server.
func registerMessageMetrics(reg *metrics.Registry, servers []countedServer) {
	if len(servers) == 0 {
		return
	}
	reg.Register(func(e *metrics.Emitter) {
		for _, s := range servers {
			in, out := s.mc.MessageCounts()
			l := metrics.L("protocol", s.protocol)
			e.Counter(metrics.MessagesInTotal, "Messages accepted from publishers and producers (Kafka: records).", float64(in), l)
			e.Counter(metrics.MessagesOutTotal, "Messages delivered to consumers and subscribers, per delivered copy (Kafka: records fetched).", float64(out), l)
		}
	})
}

// fsyncHistogram converts the writer's fixed fsync buckets to a snapshot.
func fsyncHistogram(x segment.WriterExtStats, w segment.WriterStats) metrics.HistogramSnapshot {
	var h metrics.HistogramSnapshot
	for i, upper := range segment.FsyncBucketUpper {
		if i == len(segment.FsyncBucketUpper)-1 {
			break // the last bucket is +Inf
		}
		h.Bounds = append(h.Bounds, upper.Seconds())
		h.Counts = append(h.Counts, x.FsyncLatency[i])
	}
	h.Counts = append(h.Counts, x.FsyncLatency[len(x.FsyncLatency)-1])
	h.Sum = w.FsyncTimeTotal.Seconds()
	return h
}

// registerMQTTMetrics exposes what the MQTT server counts beyond messages
// in and out: messages it dropped (QoS 0 above a slow subscriber's
// high-water mark, session queue overflows), shared-subscription handovers,
// publisher pauses, expired messages, wills and protocol errors.
func registerMQTTMetrics(reg *metrics.Registry, srv *mqtt.Server) {
	if srv == nil {
		return
	}
	reg.Register(func(e *metrics.Emitter) {
		st := srv.Stats()
		e.Counter("quartet_mqtt_dropped_total", "Messages dropped: QoS 0 to slow subscribers and session queue overflows.", float64(st.Dropped.Load()))
		e.Counter("quartet_mqtt_shared_handovers_total", "Shared-subscription messages a member could not take, given to another member.", float64(st.SharedHandovers.Load()))
		e.Counter("quartet_mqtt_publisher_pauses_total", "Publishers paused by a deep session queue.", float64(st.PublisherPauses.Load()))
		e.Counter("quartet_mqtt_expired_messages_total", "Messages whose MQTT 5 message expiry passed before delivery.", float64(st.ExpiredMessages.Load()))
		e.Counter("quartet_mqtt_wills_published_total", "Will messages published.", float64(st.WillsPublished.Load()))
		e.Counter("quartet_mqtt_protocol_errors_total", "Connections closed for a protocol violation.", float64(st.ProtocolErrors.Load()))
	})
}

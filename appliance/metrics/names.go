package metrics

// Standard metric names of the appliance. Label conventions in brackets.
const (
	// Connections: gauge, open client connections {protocol}.
	Connections = "quartet_connections"
	// ConnectionsAcceptedTotal: counter {protocol}.
	ConnectionsAcceptedTotal = "quartet_connections_accepted_total"
	// ConnectionsRejectedTotal: counter {protocol, reason} (limit, tls, ...).
	ConnectionsRejectedTotal = "quartet_connections_rejected_total"
	// BytesInTotal / BytesOutTotal: counters of wire bytes {protocol}.
	BytesInTotal  = "quartet_bytes_in_total"
	BytesOutTotal = "quartet_bytes_out_total"
	// MessagesInTotal / MessagesOutTotal: counters of records published and
	// delivered {protocol}.
	MessagesInTotal  = "quartet_messages_in_total"
	MessagesOutTotal = "quartet_messages_out_total"
	// AppendsTotal: counter of appends completed by the segment writer.
	AppendsTotal = "quartet_appends_total"
	// AppendErrorsTotal: counter of appends that failed.
	AppendErrorsTotal = "quartet_append_errors_total"
	// FsyncsTotal: counter of fdatasync calls.
	FsyncsTotal = "quartet_fsyncs_total"
	// AppendsPerFsync: gauge, appends_total / fsyncs_total (group commit).
	AppendsPerFsync = "quartet_appends_per_fsync"
	// FsyncSeconds: histogram of fdatasync latency.
	FsyncSeconds = "quartet_fsync_seconds"
	// AppendSeconds: histogram of append latency (enqueue to completion).
	AppendSeconds = "quartet_append_seconds"
	// Segments / SegmentBytes: gauges over all logs.
	Segments     = "quartet_segments"
	SegmentBytes = "quartet_segment_bytes"
	// Topics / Partitions: gauges.
	Topics     = "quartet_topics"
	Partitions = "quartet_partitions"
	// ConsumerLag: gauge, messages behind the high watermark
	// {protocol, group, topic}.
	ConsumerLag = "quartet_consumer_lag"
	// DropsTotal: counter of messages dropped {protocol, reason} (for
	// example MQTT QoS 0 to a slow consumer).
	DropsTotal = "quartet_drops_total"
	// PausesTotal: counter of publisher read pauses {reason}
	// (memory_high_water, outbound_high_water, disk_free).
	PausesTotal = "quartet_publish_pauses_total"
	// Ready: gauge, 1 once every listener accepts.
	Ready = "quartet_ready"
)

// LatencyBuckets (seconds) suit fsync and append latency: 50µs to ~3.3s.
var LatencyBuckets = ExponentialBuckets(50e-6, 2, 17)

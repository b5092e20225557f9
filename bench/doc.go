// Package bench is quartet-bench: a load generator for the four protocols
// Quartet speaks (Kafka, AMQP 0-9-1, MQTT 3.1.1, RocketMQ remoting), built on
// the real client libraries (franz-go, amqp091-go, paho.mqtt.golang,
// rocketmq-client-go), plus side-by-side runs against peer brokers and
// reports (results.json, Markdown, SVG/HTML chart).
//
// Process layout of one run (BENCHMARKING.md: load generators in one process
// starve each other, so publishers and subscribers run apart):
//
//	quartet-bench <proto> (parent: setup, clocks, /proc sampling, report)
//	   ├── quartet-bench <proto> --role sub   (consumers)  ─┐ JSON lines on stdout,
//	   └── quartet-bench <proto> --role pub   (producers)  ─┘ commands on stdin
//
// Timeline shared by all three processes (wall clock, same machine):
//
//	T0 ── warm-up ── T1 ── measured window ── T2 ── drain ──▶
//
// Publishers stop at T2. Throughput counts messages sent and received inside
// [T1,T2); latency (publish-to-consume, from an 8-byte send timestamp at the
// start of every payload) is recorded for messages sent inside [T1,T2); drops
// are everything sent minus everything received after the drain.
//
// Payload layout (at least 16 bytes):
//
//	0      8            16                size
//	┌──────┬────────────┬─────────────────┐
//	│ ts ns│ producer,seq│ filler (0x2a)   │
//	└──────┴────────────┴─────────────────┘
package bench

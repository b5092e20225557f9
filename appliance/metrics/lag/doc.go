// Package lag exposes consumer lag: for every committed offset in the
// engine's metadata store (namespace "offsets", key group\x00topic\x00partition,
// written by Kafka consumer groups and RocketMQ consumer groups alike), the
// messages between it and the partition's high watermark, summed per group
// and topic:
//
//	quartet_consumer_lag{group="g",topic="t"} 42
//	quartet_consumer_offsets{group="g",topic="t"} 3   (committed partitions)
//
// Serve registers it with lag.Register(reg, eng). The collector runs at
// scrape time and only reads: a copy of the offsets namespace and each
// partition's high watermark.
package lag

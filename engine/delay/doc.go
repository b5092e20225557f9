// Package delay holds messages until a fixed delay has passed, then appends
// them to their destination partition (RocketMQ delay levels 1–18).
//
// The schedule is an ordinary engine topic with one partition per level, as
// RocketMQ's SCHEDULE_TOPIC_XXXX: within a level every message waits the same
// time, so each partition is due in offset order and only its head needs a
// timer. A scheduled record carries its destination and due time in headers
// the scheduler adds and strips:
//
//	dly@topic = destination topic
//	dly@part  = destination partition (decimal)
//	dly@due   = due time, ms since the epoch (decimal)
//
// Each level's delivery cursor (the next schedule offset to deliver) is kept
// in the metadata store, namespace "delay", key "<schedule topic>/<level>",
// and advanced after the destination append completes, so delivery survives
// a restart at least once.
package delay

// Package delay holds messages until a fixed delay has passed, then appends
// them to their destination queue (RocketMQ delay levels 1–18).
//
// The schedule is a topic of the commit log (engine/commitlog) with one
// queue per level, as RocketMQ's SCHEDULE_TOPIC_XXXX: within a level every
// message waits the same time, so each queue is due in offset order and only
// its head needs a timer. A scheduled record carries its destination and due time in headers
// the scheduler adds and strips:
//
//	dly@topic = destination topic
//	dly@part  = destination queue (decimal)
//	dly@due   = due time, ms since the epoch (decimal)
//
// Each level's delivery cursor (the next queue offset to deliver) is kept
// in the metadata store, namespace "delay.cq", key "<schedule topic>/<level>",
// and advanced after the destination append completes, so delivery survives
// a restart at least once.
package delay

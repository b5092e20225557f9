// Package queue holds message queues with ack state, protocol-neutrally:
// ready messages (optionally in priority levels), the count of unacked
// deliveries, per-queue and per-message TTL, max-length and max-length-bytes
// with the drop-head, reject-publish and reject-publish-dlx overflow modes,
// dead-lettering (through a callback the owner routes), delivery limits,
// consumer priorities and single active consumer.
//
// Consumers pull: a queue that gains messages wakes one hungry consumer
// (Consumer.Wake, which must not block — the AMQP layer schedules a drain on
// the consumer's event loop), and the consumer pulls as many entries as its
// credit allows. So a burst of publishes costs one wake-up, and prefetch is
// enforced by the consumer, exactly.
//
//	Publish ─▶ [ready: level maxPriority] ... [level 0] ─Pull─▶ consumer (unacked++)
//	              ▲          │ expired / overflow                 │ Ack: unacked--, store ack
//	              │          ▼                                    │ Requeue: back at the head
//	              │      DeadLetter(entries, reason)              │ Reject: DeadLetter or drop
//	              └───────────────────────────────────────────────┘
//
// Durable queues keep persistent messages in a shared log (see Store); a
// queue itself only records which messages it holds and calls Store.Ack.
package queue

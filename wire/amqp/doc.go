// Package amqp serves AMQP 0-9-1 (the RabbitMQ dialect) on netpoll.
//
// Frames (spec 4.2.3):
//
//	+------+---------+---------+----------------+-----------+
//	| type | channel |  size   |    payload     | frame-end |
//	|  1   |    2    |    4    |   size bytes   |   0xCE    |
//	+------+---------+---------+----------------+-----------+
//
// Method payloads are class-id(2) method-id(2) arguments; the codec for every
// method and for the basic content properties is generated from the
// specification XML in internal/gen (`go generate`). A published message is
// a basic.publish method frame, a content header frame (class, weight, body
// size, property flags and properties) and body frames up to frame-max.
//
// Exchanges and bindings live in engine/exchange and queues in engine/queue;
// this package holds connections, channels and their state machines and the
// glue (the virtual host) that persists durable definitions.
package amqp

// Differences from RabbitMQ (each unimplemented feature answers with the
// protocol's own error):
//
//   - One virtual host, "/" (another gives connection.close 530 NOT_ALLOWED).
//     Users: guest/guest from loopback (Config.AllowRemoteGuest lifts that)
//     and Config.Users; PLAIN and AMQPLAIN.
//   - Queues keep their ready messages in memory; persistent messages on
//     durable queues are also in the shared queue log (recovered on start),
//     but a queue does not page to disk (no lazy mode).
//   - quorum queues are durable classic queues that honour x-delivery-limit;
//     stream queues are logs read from x-stream-offset, with retention by
//     x-max-age and x-max-length-bytes over x-stream-max-segment-size-bytes
//     segments (checked every 5 s).
//   - Publishers are flow-controlled (reads paused) while a queue with
//     consumers holds a large backlog, as RabbitMQ's credit flow does.
//   - connection.blocked: the low-disk alarm (Config.DataDir,
//     Config.DiskFreeBytesMin) and Server.SetBlocked for other alarms.
//   - Not implemented: basic.publish immediate=true and basic.recover
//     requeue=false (540 NOT_IMPLEMENTED, as RabbitMQ), exchange types other
//     than direct/fanout/topic/headers (503 COMMAND_INVALID).

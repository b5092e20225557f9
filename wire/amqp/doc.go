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

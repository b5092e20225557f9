// Package session holds MQTT sessions: each client's subscriptions, its queue
// of messages waiting to be sent, its inflight window (QoS 1/2 sent and not yet
// acknowledged, redelivered with DUP on reconnect) and the inbound QoS 2 packet
// identifiers awaiting PUBREL. Messages are refcounted and shared by every
// queue that holds them (and by the retained store), so fan-out never copies a
// payload.
//
// An idle session costs a struct, its subscription list and its queue slice:
// no file, no goroutine, no timer. Persistence is the protocol's (wire/mqtt):
// session records, per-message queue records and inbound QoS 2 ids in the
// engine's metadata catalog, and Batch records shared by several entries in an
// internal log; an Entry says which (Seq, Batch, Live).
package session

// Package mqtt serves MQTT 3.1, 3.1.1 and 5.0 (on TCP and, through netpoll's
// WebSocket transport, on WebSocket with subprotocol "mqtt") on top of the
// engine's subscription trie, session store and retained store.
//
// Files: packet.go / props.go (codec, every packet type, MQTT 5 properties and
// reason codes), framer.go (remaining-length framing), server.go (Server,
// routing, shared-subscription handover, $SYS), conn.go (per-connection state
// machine, outbound drain), persist.go (persistent sessions in Meta, live
// batches, durable acknowledgements), livelog.go (the internal log
// "mqtt-live" holding QoS 1 for connected persistent sessions).
//
// Every QoS 1/2 message routed to a persistent session is durable before the
// publisher gets PUBACK/PUBREC (see README.md, "Crash safety").
//
// Fixed header on the wire:
//
//	+--------+--------+-----+--------+----------------------------+
//	| type:4 | flags:4| remaining length (varint, 1-4 B)| body ... |
//	+--------+--------+-----+--------+----------------------------+
//
// Differences from Mosquitto: QoS 0 messages to offline persistent sessions
// are not queued (as Mosquitto's default queue_qos0_messages false); a PUBACK
// to a QoS 1 publisher whose message went to a persistent session (connected
// or not) is sent after the append completes (Mosquitto persists only on its
// autosave interval).
package mqtt

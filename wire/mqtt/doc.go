// Package mqtt serves MQTT 3.1, 3.1.1 and 5.0 (on TCP and, through netpoll's
// WebSocket transport, on WebSocket with subprotocol "mqtt") on top of the
// engine's subscription trie, session store and retained store.
//
// Files: packet.go / props.go (codec, every packet type, MQTT 5 properties and
// reason codes), framer.go (remaining-length framing), server.go (Server,
// routing, $SYS), conn.go (per-connection state machine), deliver.go
// (outbound path: per-connection MPSC queue drained by one Execute).
//
// Fixed header on the wire:
//
//	+--------+--------+-----+--------+----------------------------+
//	| type:4 | flags:4| remaining length (varint, 1-4 B)| body ... |
//	+--------+--------+-----+--------+----------------------------+
//
// Differences from Mosquitto: QoS 0 messages to offline persistent sessions
// are not queued (as Mosquitto's default queue_qos0_messages false); a PUBACK
// to a QoS 1 publisher whose message was queued for an offline persistent
// session is sent after the session log append completes.
package mqtt

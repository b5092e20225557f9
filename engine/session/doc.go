// Package session holds MQTT sessions: each client's subscriptions, its queue
// of messages waiting to be sent, its inflight window (QoS 1/2 sent and not yet
// acknowledged, redelivered with DUP on reconnect) and the inbound QoS 2 packet
// identifiers awaiting PUBREL. Messages are refcounted and shared by every
// queue that holds them (and by the retained store), so fan-out never copies a
// payload.
//
// An idle session costs a struct, its subscription list and its queue slice:
// no file, no goroutine, no timer. Persistent sessions are made durable by
// Store.Persist* (metadata catalog for the session record and subscriptions,
// one shared internal log for queued messages of every session):
//
//	meta ns "mqtt.session"  key clientID -> session record (AppendRecord)
//	log "mqtt-sessions"     record key clientID, value = encoded message,
//	                        header "q" = queue sequence; acks are records
//	                        with header "a" = sequence acknowledged
package session

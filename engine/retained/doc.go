// Package retained is the MQTT retained-message store: the last retained
// message per topic, kept in a tree of topic levels so a subscription's
// filter (with + and #) is matched by walking the tree rather than scanning
// every topic. Messages are shared by reference (session.Message), so
// delivering a retained message to many subscribers never copies its payload.
//
// Durability: each set or clear is written to the metadata catalog
// (namespace "mqtt.retained", key = topic, value = session.AppendMessage
// encoding) and replayed by Load on start.
package retained

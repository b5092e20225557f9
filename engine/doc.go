// Package engine is Quartet's protocol-neutral broker core. It owns the
// segment writer, the metadata catalog (Meta), and topics with partitions
// backed by segment logs; its subpackages hold what protocols share beyond
// logs: consumer groups (group), exchanges and routing (exchange), queues with
// ack state (queue), the subscription trie (trie), MQTT sessions (session)
// and retained messages (retained), delayed (delay) and transactional (txn)
// messages. It never imports wire or netpoll.
//
// On disk, under the data directory:
//
//	meta/                 the catalog: a log of (namespace NUL key -> value) records
//	topics/<name>-<p>/    one segment log per partition
//	internal/<name>/      logs the protocols open for themselves (queues, sessions, delays)
//
// A protocol appends through Partition.Append with a segment.Completer that
// hears back once the bytes are durable, reads through Partition.Read (a
// file range for sendfile) or ReadBytes, and long-polls with Partition.Wait.
package engine

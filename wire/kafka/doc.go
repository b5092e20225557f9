// Package kafka serves the Apache Kafka wire protocol on top of the engine:
// unmodified Kafka clients (franz-go, librdkafka/kcat, kafka-python,
// kafkajs, the Java client) produce, consume, form consumer groups and run
// admin calls against it.
//
// Frames are size-prefixed (netpoll.LengthPrefixed32); a request header is
//
//	size int32 | api_key int16 | api_version int16 | correlation_id int32 |
//	client_id nullable string | [tagged fields, flexible versions]
//
// and a response header is size | correlation_id | [tagged fields, flexible
// versions except ApiVersions]. The versions served per API are the table in
// versions.go; only those are advertised by ApiVersions, and a request for
// anything else closes the connection (ApiVersions answers too-new versions
// per KIP-511 instead).
//
// Produce and Fetch are hand-framed (produce.go, fetch.go): records pass
// through untouched into the segment log and leave by sendfile. The other
// APIs use github.com/twmb/franz-go/pkg/kmsg (generated from Kafka's JSON
// schemas) for their encoding. Consumer groups are engine/group; idempotent
// producer state is engine/producer.
//
// Responses leave in request order per connection: anything that completes
// later (acks≠0 produce, joins and syncs, commits, long-polls, catalog
// changes) reserves its place with Conn.Reserve when the request is read.
package kafka

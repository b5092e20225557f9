// Package producer keeps the idempotent-producer state of each partition:
// for every producer id, its epoch and the sequence numbers and offsets of its
// last five batches (Kafka's max.in.flight.requests.per.connection bound), so
// a retried batch is recognised as a duplicate and a gap is refused.
//
// The state is not written anywhere: Kafka RecordBatch v2 headers carry the
// producer id, epoch and base sequence of every batch, so on the first
// idempotent append to a partition after start-up the state is rebuilt by
// reading the batch headers of the partition's tail (the last
// rebuildRecordsMax offsets). A producer whose last batch is older than that
// is treated as new, which Kafka does too once its state has been expired.
//
//	batch header (segment.BatchHeader)     state per producer id
//	┌──────────────┬──────────────┐        ┌───────┬──────────────────────────┐
//	│ producerId   │ int64        │──key──▶│ epoch │ ring of 5 {firstSeq,      │
//	│ producerEpoch│ int16        │        │       │  lastSeq, baseOffset}     │
//	│ baseSequence │ int32        │        └───────┴──────────────────────────┘
//	│ lastOffsetΔ  │ int32        │
//	└──────────────┴──────────────┘
//
// Producer ids come from Manager.NextID: the wall clock in microseconds,
// kept strictly increasing, so ids stay unique across restarts without a
// durable counter.
package producer

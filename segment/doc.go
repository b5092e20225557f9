// Package segment owns Quartet's on-disk log: append-only segment files of
// Kafka RecordBatch v2 batches, their sparse indexes, recovery of torn tails,
// retention, and the writer thread that does the disk I/O with group commit.
//
// A log is a directory of segments, each named by its base offset:
//
//	00000000000000000000.log        batches back to back, as producers sent them
//	00000000000000000000.index      (relOffset uint32, position uint32) every ~4 KiB
//	00000000000000000000.timeindex  (maxTimestamp int64, relOffset uint32)
//	00000000000000052113.log        next segment, base offset 52113
//	log-start-offset                set by DeleteBefore (Kafka DeleteRecords)
//	.clean-shutdown                 present only between a clean Close and the next Open
//
// One batch (big-endian; CRC-32C covers attributes through the last record):
//
//	 0 baseOffset int64      <- patched by the log on append (outside the CRC)
//	 8 batchLength int32        bytes after this field
//	12 leaderEpoch int32     <- set to 0 by the log (outside the CRC)
//	16 magic int8 = 2
//	17 crc uint32
//	21 attributes int16         compression (bits 0-2), timestamp type (3), transactional (4), control (5)
//	23 lastOffsetDelta int32
//	27 baseTimestamp int64
//	35 maxTimestamp int64
//	43 producerId int64
//	51 producerEpoch int16
//	53 baseSequence int32
//	57 recordCount int32
//	61 records...               varint-framed; compressed as a whole when attributes say so
//
// Append path: Log.Append validates (length, magic, CRC), copies the batches
// into a pooled buffer, assigns offsets, updates the in-memory indexes and
// submits one Request to the Writer without blocking. The Writer (one OS
// thread, io_uring or pwritev+fdatasync) writes everything queued as one round
// and shares one fdatasync per file among all of the round's requests (group
// commit). Completions advance the high watermark in offset order; only then
// are records readable and is the appender's Completer told. A failed write
// fails every append queued behind it; the log truncates back to the last
// good batch before accepting appends again, so nothing partial is ever read.
package segment

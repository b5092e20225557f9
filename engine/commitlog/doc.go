// Package commitlog is RocketMQ's store layout over the engine: one commit
// log shared by every topic and queue of the broker, plus a consume queue
// per (topic, queue) that maps dense queue offsets 0, 1, 2, ... to commit-log
// offsets.
//
// The commit log is one engine internal log (data/internal/<name>): every
// send is appended there, so one writer round needs one fdatasync however
// many topics and queues it carries (group commit across queues, as the Java
// broker's commit log). Each record of the log is tagged in its key with its
// destination:
//
//	key = topic NUL queue-id (decimal)        value, headers: the message
//
// A queue offset is assigned when the append completes (the writer calls
// completions in commit-log order), so consume queues list commit-log offsets
// in ascending order, and a consumer only sees completed (fdatasync'ed under
// flush=sync) messages.
//
// Consume queues are checkpointed to data/internal/<name>.cq/ every 5 s and
// on Close (their newest entries are also held in memory):
//
//	<topic>@<queue>.cq   commit-log offset int64 (big-endian) per queue offset,
//	                     entry i at byte 8*i (append-only)
//	checkpoint           "QCQ1" | end int64 | queues uint32 |
//	                     { topicLen uint16 | topic | queue uint32 | entries int64 }* |
//	                     crc32c uint32 (over everything before it)
//
// The checkpoint is written (temp file, fdatasync, rename; the directory is
// not synced: a lost rename leaves the previous checkpoint, which is just as
// valid) after the queue files it counts are fdatasync'ed; "end" is the commit-log offset below which
// every record is in those entries. Recovery loads the entries the checkpoint
// counts (cutting off anything written after it), drops entries at or past the
// commit log's recovered end (an unclean stop under flush=async can lose the
// log's tail), and rebuilds the rest by scanning the commit log from "end".
// Without a valid checkpoint every queue is rebuilt from the whole log.
//
// Topics (name → queue count) are metadata-catalog entries, namespace
// "rmq.topic".
package commitlog

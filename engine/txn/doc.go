// Package txn holds transactional "half" messages invisible to consumers
// until the producer commits or rolls them back, and asks a live producer
// about undecided ones (RocketMQ transactional messages with check-back).
//
// Half messages are records of a commit-log topic (engine/commitlog) with one
// queue (as RocketMQ's RMQ_SYS_TRANS_HALF_TOPIC); a half is named by its
// commit-log offset. The store adds and strips headers naming the destination
// and the producer group:
//
//	txn@topic = destination topic
//	txn@part  = destination queue (decimal)
//	txn@group = producer group
//
// Decisions and check counts live in the metadata store, namespace "txn.cl":
//
//	op/<half's commit-log offset>  = "c" (committed) | "r" (rolled back) | "x" (discarded after too many checks)
//	chk/<half's commit-log offset> = number of checks sent (decimal)
//	low                            = every half below this queue offset is decided (decimal)
//
// On open the half queue is scanned from low and every record without an
// op is pending again, with its check count, so undecided transactions
// survive a restart. A commit appends the message to its destination and then
// records the op; a crash in between re-delivers it at most once more after
// the next check-back (at-least-once).
package txn

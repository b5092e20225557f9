// Package rocketmq serves the Apache RocketMQ remoting protocol: a name server
// (9876) and a broker (10911), two netpoll Protocols of one Server, over the
// shared engine.
//
// Every message of every topic and queue is a record of one commit log
// (engine/commitlog: an engine internal log, so one writer round needs one
// fdatasync whatever the queues), tagged with its topic and queue; a consume
// queue per (topic, queue) maps dense queue offsets to commit-log offsets. A
// message is one record of a RecordBatch v2: the body is the record value,
// each property a header "rmq:<NAME>", and the message's other fields headers
// "rmq@<field>" (flag, born timestamp and host, sysFlag bits, reconsume
// times). The record timestamp is the store time.
//
// Remoting frame (big-endian):
//
//	+--------------+---------------------------+--------+------+
//	| length int32 | serial<<24 | headerLen    | header | body |
//	+--------------+---------------------------+--------+------+
//
// serial 0 is a JSON header, 1 the ROCKETMQ binary header:
//
//	code int16 | language int8 | version int16 | opaque int32 | flag int32 |
//	remarkLen int32 | remark | extLen int32 | { keyLen int16 key valLen int32 val }*
//
// Responses use the request's serialization and echo its opaque; flag bit 0
// marks a response, bit 1 a oneway request. Unknown request codes are answered
// REQUEST_CODE_NOT_SUPPORTED (3).
//
// Physical offsets, which clients see inside offsetMsgId and send back in
// CONSUMER_SEND_MSG_BACK and END_TRANSACTION, are commit-log offsets.
//
// Delayed messages go through engine/delay (SCHEDULE_TOPIC_XXXX, one queue per
// level), transactional half messages through engine/txn
// (RMQ_SYS_TRANS_HALF_TOPIC); both are topics of the same commit log.
package rocketmq

// Package uring is the small io_uring ring netpoll batches socket writes
// through (golang.org/x/sys/unix, no cgo): SEND, SENDMSG and RECV on
// non-blocking sockets, submit-and-wait, CQE reaping.
//
// On non-blocking sockets these operations complete inline during
// io_uring_enter (the kernel returns -EAGAIN in the CQE instead of waiting),
// so one io_uring_enter does the work of many write(2) or read(2) calls and
// saves their system-call entries and exits — expensive on the
// paravirtualised machines this was measured on (~1.2 µs each).
//
// The ring is created without IORING_SETUP_SINGLE_ISSUER: gnet loops are
// goroutines and may move between OS threads. A Ring is not safe for
// concurrent use. Anything the kernel reads through an SQE (buffers, iovec
// arrays, msghdrs) must be heap memory that stays reachable until the
// CQE is reaped; callers keep it in long-lived structures.
package uring

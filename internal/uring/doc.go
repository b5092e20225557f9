// Package uring is Quartet's one small io_uring ring over
// golang.org/x/sys/unix (no cgo; the public Go io_uring modules are not
// reachable from the module proxy). It has what two users need:
//
//   - the segment writer: WRITEV at an offset, FSYNC with
//     IORING_FSYNC_DATASYNC, IOSQE_IO_LINK chains. Its ring belongs to one
//     OS thread (runtime.LockOSThread before New, used only from that
//     goroutine): New sets IORING_SETUP_SINGLE_ISSUER (and DEFER_TASKRUN
//     when the kernel has it), falling back to plain flags on EINVAL.
//   - netpoll's batched socket writes: SEND, SENDMSG and RECV on
//     non-blocking sockets, which complete inline during io_uring_enter, so
//     one call does the work of many write(2)s. A gnet loop is a goroutine
//     that may move between OS threads, so NewShared sets no SINGLE_ISSUER.
//
// Both submit and wait with Submit and reap with PeekCQE/Advance.
//
// Memory layout shared with the kernel (mmap of the ring fd):
//
//	SQ ring  (IORING_OFF_SQ_RING): head tail ring_mask ring_entries flags dropped array[entries]
//	CQ ring  (IORING_OFF_CQ_RING, or the SQ mapping with IORING_FEAT_SINGLE_MMAP):
//	         head tail ring_mask ring_entries overflow cqes[cq_entries] (16 B each)
//	SQEs     (IORING_OFF_SQES): entries × 64 B
//
//	SQE: 0 opcode u8 | 1 flags u8 | 2 ioprio u16 | 4 fd s32 | 8 off u64 | 16 addr u64
//	     24 len u32 | 28 op_flags u32 | 32 user_data u64 | 40 buf_index/personality/... | 48 pad
//	CQE: 0 user_data u64 | 8 res s32 | 12 flags u32
//
// The application writes SQEs and publishes the SQ tail with an atomic store
// (release); the kernel publishes the CQ tail, which is read with an atomic
// load (acquire) and consumed by storing the CQ head. Anything the kernel
// reads through an SQE (iovec arrays, buffers) must stay reachable and
// unmoved until its CQE is reaped: callers keep it in long-lived heap memory
// (pinned with runtime.Pinner, or held in long-lived structures) — see
// segment's writer and netpoll's writeBatch.
package uring

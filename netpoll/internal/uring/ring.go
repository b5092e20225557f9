//go:build linux

package uring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes and flags from <linux/io_uring.h>.
const (
	opSendmsg = 9
	opSend    = 26
	opRecv    = 27

	setupCoopTaskrun = 1 << 8 // IORING_SETUP_COOP_TASKRUN
	featSingleMmap   = 1 << 0 // IORING_FEAT_SINGLE_MMAP
	enterGetEvents   = 1 << 0 // IORING_ENTER_GETEVENTS

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	sqeBytes = 64
	cqeBytes = 16
)

type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

var _ [120]byte = [unsafe.Sizeof(params{})]byte{}

// SQE is one submission queue entry (struct io_uring_sqe, 64 bytes).
type SQE struct {
	Opcode   uint8
	Flags    uint8
	Ioprio   uint16
	FD       int32
	Off      uint64
	Addr     uint64
	Len      uint32
	OpFlags  uint32
	UserData uint64
	_        [3]uint64
}

var _ [sqeBytes]byte = [unsafe.Sizeof(SQE{})]byte{}

// CQE is one completion queue entry (struct io_uring_cqe, 16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is an io_uring instance.
type Ring struct {
	fd int

	sqMap, cqMap, sqeMap []byte

	sqHead, sqTail    *uint32
	sqMask, sqEntries uint32
	sqes              unsafe.Pointer
	sqeTail           uint32 // next SQE to hand out
	sqeHead           uint32 // first SQE not yet published

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer
}

// ErrUnavailable is wrapped by New's error when the kernel gives this
// process no io_uring (ENOSYS, EPERM from kernel.io_uring_disabled or a
// seccomp filter, ...).
var ErrUnavailable = errors.New("uring: io_uring unavailable")

// New creates a ring with at least entries SQEs (and twice as many CQEs).
func New(entries uint32) (*Ring, error) {
	var p params
	var fd uintptr
	var errno unix.Errno
	for _, flags := range []uint32{setupCoopTaskrun, 0} {
		p = params{flags: flags}
		fd, _, errno = unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
		if errno != unix.EINVAL {
			break
		}
	}
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnavailable, errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		unix.Close(r.fd)
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*cqeBytes)
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
		cqSize = sqSize
	}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	if r.sqMap, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return fmt.Errorf("uring: mmap sq ring: %w", err)
	}
	if single {
		r.cqMap = r.sqMap
	} else if r.cqMap, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
		unix.Munmap(r.sqMap)
		return fmt.Errorf("uring: mmap cq ring: %w", err)
	}
	if r.sqeMap, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries*sqeBytes), prot, flags); err != nil {
		if !single {
			unix.Munmap(r.cqMap)
		}
		unix.Munmap(r.sqMap)
		return fmt.Errorf("uring: mmap sqes: %w", err)
	}
	sq := unsafe.Pointer(&r.sqMap[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	array := unsafe.Add(sq, p.sqOff.array)
	for i := uint32(0); i < r.sqEntries; i++ { // identity SQ array
		*(*uint32)(unsafe.Add(array, 4*i)) = i
	}
	r.sqes = unsafe.Pointer(&r.sqeMap[0])
	cq := unsafe.Pointer(&r.cqMap[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqeHead = r.sqeTail
	return nil
}

// Entries is the SQ size.
func (r *Ring) Entries() uint32 { return r.sqEntries }

// Queued is the number of SQEs taken and not yet submitted.
func (r *Ring) Queued() uint32 { return r.sqeTail - r.sqeHead }

// GetSQE returns the next free SQE, zeroed, or nil if the SQ is full.
func (r *Ring) GetSQE() *SQE {
	if r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	sqe := (*SQE)(unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*sqeBytes))
	*sqe = SQE{}
	r.sqeTail++
	return sqe
}

// PrepSend fills sqe with a SEND of b to the socket fd (flags: MSG_*).
func (sqe *SQE) PrepSend(fd int, b []byte, flags uint32, userData uint64) {
	sqe.Opcode = opSend
	sqe.FD = int32(fd)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	sqe.Len = uint32(len(b))
	sqe.OpFlags = flags
	sqe.UserData = userData
}

// PrepSendmsg fills sqe with a SENDMSG of msg to the socket fd.
func (sqe *SQE) PrepSendmsg(fd int, msg *unix.Msghdr, flags uint32, userData uint64) {
	sqe.Opcode = opSendmsg
	sqe.FD = int32(fd)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(msg)))
	sqe.Len = 1
	sqe.OpFlags = flags
	sqe.UserData = userData
}

// PrepRecv fills sqe with a RECV into b from the socket fd.
func (sqe *SQE) PrepRecv(fd int, b []byte, flags uint32, userData uint64) {
	sqe.Opcode = opRecv
	sqe.FD = int32(fd)
	sqe.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	sqe.Len = uint32(len(b))
	sqe.OpFlags = flags
	sqe.UserData = userData
}

// Submit publishes every SQE taken since the last Submit and waits until at
// least waitNr CQEs are ready. Operations on non-blocking sockets complete
// during the call, so with waitNr = the number submitted it returns with
// every CQE ready and does not sleep.
func (r *Ring) Submit(waitNr uint32) error {
	toSubmit := r.sqeTail - r.sqeHead
	if toSubmit > 0 {
		atomic.StoreUint32(r.sqTail, r.sqeTail) // release: SQEs visible first
		r.sqeHead = r.sqeTail
	}
	for toSubmit > 0 || r.Ready() < waitNr {
		var flags uintptr
		if waitNr > 0 {
			flags = enterGetEvents
		}
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitNr), flags, 0, 0)
		switch errno {
		case 0:
			toSubmit -= uint32(n)
		case unix.EINTR:
		case unix.EAGAIN, unix.EBUSY:
			if r.Ready() > 0 {
				return errno
			}
		default:
			return os.NewSyscallError("io_uring_enter", errno)
		}
	}
	return nil
}

// Ready is the number of CQEs waiting to be reaped.
func (r *Ring) Ready() uint32 {
	return atomic.LoadUint32(r.cqTail) - *r.cqHead
}

// PeekCQE returns the oldest unreaped CQE, or nil. Call Advance after
// reading it.
func (r *Ring) PeekCQE() *CQE {
	head := *r.cqHead
	if head == atomic.LoadUint32(r.cqTail) {
		return nil
	}
	return (*CQE)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeBytes))
}

// Advance marks n CQEs consumed.
func (r *Ring) Advance(n uint32) {
	atomic.StoreUint32(r.cqHead, *r.cqHead+n)
}

// Close unmaps the rings and closes the ring fd.
func (r *Ring) Close() error {
	if r.fd < 0 {
		return nil
	}
	unix.Munmap(r.sqeMap)
	if &r.cqMap[0] != &r.sqMap[0] {
		unix.Munmap(r.cqMap)
	}
	unix.Munmap(r.sqMap)
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

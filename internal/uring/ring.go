//go:build linux

package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes, flags and offsets from <linux/io_uring.h>.
const (
	opNop     = 0
	opWritev  = 2
	opFsync   = 3
	opSendmsg = 9
	opSend    = 26
	opRecv    = 27

	fsyncDatasync = 1 << 0 // IORING_FSYNC_DATASYNC

	sqeIOLink = 1 << 2 // IOSQE_IO_LINK

	setupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN
	setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP

	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	sqeBytes = 64
	cqeBytes = 16
)

// params mirrors struct io_uring_params (120 bytes).
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
	_        [2]uint64
	_        [1]uint64
}

var _ [sqeBytes]byte = [unsafe.Sizeof(SQE{})]byte{}

// CQE is one completion queue entry (struct io_uring_cqe, 16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is an io_uring instance. It is not safe for concurrent use; a ring
// from New (SINGLE_ISSUER) must be used from the OS thread that created it.
type Ring struct {
	fd    int
	flags uint32 // setup flags in effect
	feats uint32

	sqMap, cqMap, sqeMap []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqArray                 unsafe.Pointer
	sqes                    unsafe.Pointer
	sqeTail                 uint32 // next SQE to hand out (local)
	sqeHead                 uint32 // first SQE not yet published to the kernel

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           unsafe.Pointer
}

// ErrUnavailable is wrapped by every error Available and New return when the
// kernel will not give this process an io_uring.
var ErrUnavailable = errors.New("uring: io_uring unavailable")

func setup(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// New creates a ring with at least entries SQEs for one OS thread: call it
// on the locked OS thread that will use the ring (SINGLE_ISSUER, with
// DEFER_TASKRUN where the kernel has it).
func New(entries uint32) (*Ring, error) {
	return newRing(entries, []uint32{
		setupSingleIssuer | setupDeferTaskrun,
		setupSingleIssuer | setupCoopTaskrun,
		setupSingleIssuer,
		0,
	})
}

// NewShared creates a ring that may be used from any thread, one at a time:
// for a goroutine that is not locked to its OS thread (a netpoll loop).
func NewShared(entries uint32) (*Ring, error) {
	return newRing(entries, []uint32{setupCoopTaskrun, 0})
}

// newRing tries the setup flags most specific first; EINVAL means the
// kernel does not know a flag.
func newRing(entries uint32, candidates []uint32) (*Ring, error) {
	var fd int
	var p params
	var err error
	for _, flags := range candidates {
		p = params{flags: flags}
		fd, err = setup(entries, &p)
		if err != unix.EINVAL {
			break
		}
	}
	if err != nil {
		return nil, explain(err)
	}
	r := &Ring{fd: fd, flags: p.flags, feats: p.features}
	if err := r.mmap(&p); err != nil {
		unix.Close(fd)
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
	r.sqMap, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags)
	if err != nil {
		return fmt.Errorf("uring: mmap sq ring: %w", err)
	}
	if single {
		r.cqMap = r.sqMap
	} else if r.cqMap, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
		unix.Munmap(r.sqMap)
		return fmt.Errorf("uring: mmap cq ring: %w", err)
	}
	r.sqeMap, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries*sqeBytes), prot, flags)
	if err != nil {
		if !single {
			unix.Munmap(r.cqMap)
		}
		unix.Munmap(r.sqMap)
		return fmt.Errorf("uring: mmap sqes: %w", err)
	}
	sq := unsafe.Pointer(&r.sqMap[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.sqOff.flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	r.sqArray = unsafe.Add(sq, p.sqOff.array)
	r.sqes = unsafe.Pointer(&r.sqeMap[0])
	// Identity SQ array: slot i always points at SQE i.
	for i := uint32(0); i < r.sqEntries; i++ {
		*(*uint32)(unsafe.Add(r.sqArray, 4*i)) = i
	}
	cq := unsafe.Pointer(&r.cqMap[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	r.sqeHead = r.sqeTail
	return nil
}

// SingleIssuer reports whether the ring was created with SINGLE_ISSUER.
func (r *Ring) SingleIssuer() bool { return r.flags&setupSingleIssuer != 0 }

// SetupFlags returns a short description of the setup flags in effect.
func (r *Ring) SetupFlags() string {
	var s []string
	if r.flags&setupSingleIssuer != 0 {
		s = append(s, "SINGLE_ISSUER")
	}
	if r.flags&setupDeferTaskrun != 0 {
		s = append(s, "DEFER_TASKRUN")
	}
	if r.flags&setupCoopTaskrun != 0 {
		s = append(s, "COOP_TASKRUN")
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Entries is the SQ size.
func (r *Ring) Entries() uint32 { return r.sqEntries }

// Free is how many SQEs can still be taken before Submit.
func (r *Ring) Free() uint32 {
	return r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
}

// Queued is the number of SQEs taken and not yet submitted.
func (r *Ring) Queued() uint32 { return r.sqeTail - r.sqeHead }

// GetSQE returns the next free SQE, zeroed, or nil if the SQ is full.
func (r *Ring) GetSQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil
	}
	sqe := (*SQE)(unsafe.Add(r.sqes, uintptr(r.sqeTail&r.sqMask)*sqeBytes))
	*sqe = SQE{}
	r.sqeTail++
	return sqe
}

// prep fills sqe's common fields (liburing's io_uring_prep_rw).
func (sqe *SQE) prep(op uint8, fd int, addr unsafe.Pointer, n uint32, off uint64, opFlags uint32, userData uint64) {
	sqe.Opcode = op
	sqe.FD = int32(fd)
	sqe.Addr = uint64(uintptr(addr))
	sqe.Len = n
	sqe.Off = off
	sqe.OpFlags = opFlags
	sqe.UserData = userData
}

// PrepWritev fills sqe with a WRITEV of n iovecs at iov to fd at offset off.
// The iovec array and the buffers must stay live and unmoved until the CQE.
func (sqe *SQE) PrepWritev(fd int, iov *unix.Iovec, n int, off int64, userData uint64) {
	sqe.prep(opWritev, fd, unsafe.Pointer(iov), uint32(n), uint64(off), 0, userData)
}

// PrepSend fills sqe with a SEND of b to the socket fd (flags: MSG_*).
// b must stay live and unmoved until the CQE.
func (sqe *SQE) PrepSend(fd int, b []byte, flags uint32, userData uint64) {
	sqe.prep(opSend, fd, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)), 0, flags, userData)
}

// PrepSendmsg fills sqe with a SENDMSG of msg to the socket fd.
func (sqe *SQE) PrepSendmsg(fd int, msg *unix.Msghdr, flags uint32, userData uint64) {
	sqe.prep(opSendmsg, fd, unsafe.Pointer(msg), 1, 0, flags, userData)
}

// PrepRecv fills sqe with a RECV into b from the socket fd.
func (sqe *SQE) PrepRecv(fd int, b []byte, flags uint32, userData uint64) {
	sqe.prep(opRecv, fd, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)), 0, flags, userData)
}

// PrepFdatasync fills sqe with an FSYNC(IORING_FSYNC_DATASYNC) of fd.
func (sqe *SQE) PrepFdatasync(fd int, userData uint64) {
	sqe.prep(opFsync, fd, nil, 0, 0, fsyncDatasync, userData)
}

// PrepNop fills sqe with a NOP.
func (sqe *SQE) PrepNop(userData uint64) {
	sqe.Opcode = opNop
	sqe.UserData = userData
}

// Link makes the next SQE start only after this one succeeds in full
// (IOSQE_IO_LINK): a failed or short write cancels the rest of the chain
// (their CQEs carry -ECANCELED).
func (sqe *SQE) Link(on bool) {
	if on {
		sqe.Flags |= sqeIOLink
	} else {
		sqe.Flags &^= sqeIOLink
	}
}

// Submit publishes every SQE taken since the last Submit and waits until at
// least waitNr CQEs are available. It returns the number submitted.
// Operations on non-blocking sockets complete during the call, so with
// waitNr = the number submitted it returns with every CQE ready.
func (r *Ring) Submit(waitNr uint32) (int, error) {
	toSubmit := r.sqeTail - r.sqeHead
	if toSubmit > 0 {
		// Release: SQE contents become visible before the tail moves.
		atomic.StoreUint32(r.sqTail, r.sqeTail)
		r.sqeHead = r.sqeTail
	}
	submitted := 0
	for {
		var flags uintptr
		if waitNr > 0 {
			flags = enterGetEvents
		}
		if toSubmit == 0 && (waitNr == 0 || r.Ready() >= waitNr) {
			return submitted, nil
		}
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(waitNr), flags, 0, 0)
		switch errno {
		case 0:
			submitted += int(n)
			toSubmit -= uint32(n)
			if toSubmit == 0 && (waitNr == 0 || r.Ready() >= waitNr) {
				return submitted, nil
			}
		case unix.EINTR:
		case unix.EAGAIN, unix.EBUSY:
			// Out of resources or CQ overflow pending: the caller reaps
			// what is there; with waitNr pending we retry after yielding.
			if r.Ready() > 0 {
				return submitted, errno
			}
		default:
			return submitted, os.NewSyscallError("io_uring_enter", errno)
		}
	}
}

// Ready is the number of CQEs waiting to be reaped.
func (r *Ring) Ready() uint32 {
	return atomic.LoadUint32(r.cqTail) - *r.cqHead
}

// PeekCQE returns the oldest unreaped CQE, or nil. Call Advance after
// reading it.
func (r *Ring) PeekCQE() *CQE {
	head := *r.cqHead // only we write it
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

// Available reports whether this process can use io_uring, and if not, why.
func Available() error {
	var p params
	fd, err := setup(2, &p)
	if err != nil {
		return explain(err)
	}
	unix.Close(fd)
	return nil
}

func explain(err error) error {
	errno, _ := err.(syscall.Errno)
	var why string
	switch errno {
	case unix.ENOSYS:
		why = "kernel has no io_uring (ENOSYS: built without CONFIG_IO_URING, or a seccomp filter answers ENOSYS)"
	case unix.EPERM:
		switch disabledSysctl() {
		case "2":
			why = "kernel.io_uring_disabled=2 (io_uring disabled for all processes)"
		case "1":
			why = "kernel.io_uring_disabled=1 (only members of kernel.io_uring_group may create rings)"
		default:
			why = "io_uring_setup denied (EPERM: seccomp filter or LSM policy, e.g. container default profile)"
		}
	case unix.ENOMEM:
		why = "io_uring_setup: ENOMEM (RLIMIT_MEMLOCK too low for the ring on older kernels)"
	case unix.EMFILE, unix.ENFILE:
		why = "io_uring_setup: out of file descriptors"
	default:
		why = "io_uring_setup: " + err.Error()
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, why)
}

func disabledSysctl() string {
	b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

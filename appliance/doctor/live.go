package doctor

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// statfs is the live Options.Statfs.
func statfs(path string) (FS, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FS{}, err
	}
	return FS{FreeBytes: s.Bavail * uint64(s.Bsize), TotalBytes: s.Blocks * uint64(s.Bsize)}, nil
}

// ioUringParams mirrors struct io_uring_params (120 bytes).
type ioUringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32
	cqOff                                                                  [10]uint32
}

// probeIOUring is the live Options.ProbeIOUring: create and close a
// one-entry ring, the same system call the segment writer makes first.
func probeIOUring() error {
	var p ioUringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return errno
	}
	unix.Close(int(fd))
	return nil
}

// portFree is the live Options.PortFree.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

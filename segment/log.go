package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of the log.
var (
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	ErrLogClosed        = errors.New("segment: log closed")
	ErrLogFailed        = errors.New("segment: log failed a write and is recovering")
)

// Config is one log's settings.
type Config struct {
	SegmentBytes       int64         // roll when the active segment would grow past this
	SegmentAge         time.Duration // roll a segment this old (0: never by age)
	RetentionBytes     int64         // delete oldest segments past this total (<= 0: no limit)
	RetentionAge       time.Duration // delete segments whose newest record is older (0: no limit)
	IndexIntervalBytes int64         // bytes between sparse index entries
	Flush              FlushMode     // sync: complete after fdatasync; async: after write
	// PreallocBytes, under flush=sync, keeps up to this many bytes of zeros
	// written ahead of the active segment's end, so an append overwrites
	// blocks the file already has and its fdatasync need not commit a size
	// change to the journal (on ext4 here: half the cost of a small
	// fdatasync). The zeros cost disk bandwidth once, so it pays for logs of
	// small, latency-bound appends, not for bulk ones. 0: off.
	PreallocBytes int64
}

// Defaults for a zero Config.
const (
	SegmentBytesDefault       = 1 << 30
	IndexIntervalBytesDefault = 4096
	segmentBytesMax           = 1<<32 - 1 // index positions are uint32
	preallocBytesMax          = 16 << 20  // the shared zero buffer's size
)

// zeros is the source of every zero-fill write; it is only ever read.
var zeros = make([]byte, preallocBytesMax)

func (c *Config) fill() {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = SegmentBytesDefault
	}
	if c.SegmentBytes > segmentBytesMax {
		c.SegmentBytes = segmentBytesMax
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = IndexIntervalBytesDefault
	}
	c.PreallocBytes = min(max(c.PreallocBytes, 0), preallocBytesMax)
	if c.Flush == "" {
		c.Flush = FlushSync
	}
}

// Completer receives the outcome of an append, on the writer's goroutine. It
// must not block.
type Completer interface {
	AppendDone(baseOffset int64, err error)
}

// DoneFunc is a Completer for callers that need only the error.
type DoneFunc func(err error)

// AppendDone calls f with err.
func (f DoneFunc) AppendDone(_ int64, err error) { f(err) }

// Log is one append-only log (a partition, a queue log, a metadata log):
// a directory of segments. Appends are assigned offsets at once and become
// readable (and complete) in offset order once the writer has written them
// (and fdatasync'ed them under flush=sync).
type Log struct {
	dir    string
	cfg    Config
	w      Writer
	logger *slog.Logger

	mu       sync.RWMutex
	segs     []*segment
	next     int64 // next offset to assign
	hw       int64 // end of readable (completed) records
	start    int64 // log start offset
	head     *appendOp
	tail     *appendOp
	failing  bool // a write failed: refuse appends until in-flight drain and repair
	failErr  error
	repair   repairPoint
	closed   bool
	drained  *sync.Cond
	onCommit func(hw int64)

	unsynced bool // flush=async: completed writes not yet fdatasync'ed
	flushing int  // background fdatasyncs and truncations in flight

	zeroReq Request  // the one zero-fill write in flight (PreallocBytes)
	zeroSeg *segment // its segment, nil when none is in flight
}

type repairPoint struct {
	seg  *segment
	pos  int64
	next int64
}

// appendOp is one append in flight; pooled so appends do not allocate.
type appendOp struct {
	req  Request
	log  *Log
	seg  *segment
	base int64
	next int64
	pos  int64
	size int64
	buf  *[]byte
	c    Completer
	done bool
	err  error
	link *appendOp
}

var appendOps sync.Pool

func init() {
	appendOps.New = func() any {
		op := &appendOp{}
		op.req.Done = op.complete
		return op
	}
}

// Open opens (creating if needed) the log in dir, recovering the tail of the
// newest segment, and submits its writes to w.
func Open(dir string, cfg Config, w Writer, logger *slog.Logger) (*Log, error) {
	cfg.fill()
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	l := &Log{dir: dir, cfg: cfg, w: w, logger: logger.With("log", dir)}
	l.drained = sync.NewCond(&l.mu)
	l.zeroReq.Done = l.zeroDone
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, err
	}
	return l, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// SetOnCommit registers fn, called on the writer goroutine (without locks
// held) whenever the readable end advances.
func (l *Log) SetOnCommit(fn func(hw int64)) {
	l.mu.Lock()
	l.onCommit = fn
	l.mu.Unlock()
}

// SetConfig changes retention and roll settings of an open log (flush mode
// and index interval stay).
func (l *Log) SetConfig(cfg Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg.Flush = l.cfg.Flush
	cfg.IndexIntervalBytes = l.cfg.IndexIntervalBytes
	cfg.PreallocBytes = l.cfg.PreallocBytes
	cfg.fill()
	l.cfg = cfg
}

// Offsets returns the log start offset, the high watermark (end of readable
// records) and the next offset to be assigned.
func (l *Log) Offsets() (start, hw, next int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start, l.hw, l.next
}

// HighWatermark is the offset after the last readable record.
func (l *Log) HighWatermark() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.hw
}

// StartOffset is the first offset still in the log.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// Append validates one or more whole RecordBatch v2 in batches, copies them,
// assigns offsets and queues the write; c.AppendDone is called with the base
// offset once the bytes are durable per the flush mode. An invalid batch is
// refused at once with an error (and c is not called). batches may be reused
// by the caller as soon as Append returns.
func (l *Log) Append(batches []byte, c Completer) error {
	if len(batches) == 0 {
		return fmt.Errorf("%w: empty append", ErrCorruptBatch)
	}
	for rest := batches; len(rest) > 0; {
		_, size, err := ValidateBatch(rest)
		if err != nil {
			return err
		}
		rest = rest[size:]
	}
	size := int64(len(batches))
	if size > l.cfg.SegmentBytes {
		return fmt.Errorf("%w: %d bytes exceed the segment size", ErrBatchTooLarge, size)
	}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLogClosed
	}
	if l.failing {
		err := l.failErr
		l.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrLogFailed, err)
	}
	seg := l.segs[len(l.segs)-1]
	if seg.size > 0 && (seg.size+size > l.cfg.SegmentBytes || (l.cfg.SegmentAge > 0 && time.Since(seg.created) > l.cfg.SegmentAge)) {
		var err error
		if seg, err = l.rollLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
	}

	op := appendOps.Get().(*appendOp)
	op.buf = getBuf(len(batches))
	buf := *op.buf
	copy(buf, batches)
	op.log, op.seg, op.c = l, seg, c
	op.base, op.pos, op.size = l.next, seg.size, size
	op.done, op.err, op.link = false, nil, nil
	for p := int64(0); p < size; {
		b := buf[p:]
		h, _ := ParseBatchHeader(b)
		SetBaseOffset(b, l.next)
		SetLeaderEpoch(b, 0)
		h.BaseOffset = l.next
		seg.noteBatch(&h, seg.size+p, h.Size(), l.cfg.IndexIntervalBytes)
		l.next += int64(h.LastOffsetDelta) + 1
		p += int64(h.Size())
	}
	op.next = l.next
	seg.size += size
	seg.inflight++
	if l.tail == nil {
		l.head = op
	} else {
		l.tail.link = op
	}
	l.tail = op
	op.req.FD = int(seg.file.Fd())
	op.req.Pos = op.pos
	op.req.Data = buf
	syncs := l.cfg.Flush == FlushSync
	op.req.Sync = syncs
	l.w.Submit(&op.req)
	if l.cfg.PreallocBytes > 0 && syncs && l.zeroSeg == nil && seg.zeroEnd < seg.size+l.cfg.PreallocBytes/2 {
		l.submitZeroLocked(seg)
	}
	l.mu.Unlock()
	return nil
}

// submitZeroLocked queues a write of zeros from the segment's end (or its
// zeroed end) up to PreallocBytes ahead. Appends into that range are submitted
// after it, and the writer keeps one file's writes in submission order, so
// the zeros never land on data.
func (l *Log) submitZeroLocked(seg *segment) {
	from := max(seg.zeroEnd, seg.size)
	to := min(seg.size+l.cfg.PreallocBytes, l.cfg.SegmentBytes)
	if to <= from {
		return
	}
	seg.zeroEnd = to
	seg.inflight++
	l.zeroSeg = seg
	l.zeroReq.FD = int(seg.file.Fd())
	l.zeroReq.Pos = from
	l.zeroReq.Data = zeros[:to-from]
	l.zeroReq.Sync = false
	l.w.Submit(&l.zeroReq)
}

// zeroDone runs on the writer goroutine. A failed zero-fill costs only speed:
// the appends behind it extend the file as they would without it (and a
// failure that reaches them is repaired as any other).
func (l *Log) zeroDone(r *Request, err error) {
	l.mu.Lock()
	seg := l.zeroSeg
	l.zeroSeg = nil
	if err != nil {
		l.logger.Warn("segment preallocation write failed", "err", err)
		seg.zeroEnd = min(seg.zeroEnd, r.Pos)
	}
	l.segDoneLocked(seg)
	if l.head == nil && l.failing {
		l.repairLocked()
	}
	if l.idleLocked() {
		l.drained.Broadcast()
	}
	l.mu.Unlock()
}

// segDoneLocked notes one completed write of seg; a sealed segment's zero
// tail is cut once nothing is in flight for it.
func (l *Log) segDoneLocked(seg *segment) {
	seg.inflight--
	if seg.sealed && seg.inflight == 0 && seg.zeroEnd > seg.size {
		l.trimLocked(seg)
	}
}

// trimLocked truncates a sealed segment's preallocated tail and makes the
// new size durable (recovery trusts the size of older segments), off the
// writer thread.
func (l *Log) trimLocked(seg *segment) {
	size := seg.size
	seg.zeroEnd = size
	l.backgroundLocked(seg, func() error {
		if err := seg.file.Truncate(size); err != nil {
			return err
		}
		return fdatasync(int(seg.file.Fd()))
	}, func(err error) {
		l.logger.Error("segment: cutting the preallocated tail of a sealed segment", "err", err, "segment", seg.path)
	})
}

// backgroundLocked runs fn on a goroutine of its own, holding s's file open
// and counting in flushing (Close waits for it); onErr runs under the lock.
func (l *Log) backgroundLocked(s *segment, fn func() error, onErr func(error)) {
	l.flushing++
	s.refs.Add(1)
	go func() {
		err := fn()
		s.release()
		l.mu.Lock()
		l.flushing--
		if err != nil {
			onErr(err)
		}
		if l.idleLocked() {
			l.drained.Broadcast()
		}
		l.mu.Unlock()
	}()
}

// idleLocked: no append, zero-fill, background sync or trim in flight.
func (l *Log) idleLocked() bool {
	return l.head == nil && l.zeroSeg == nil && l.flushing == 0
}

// complete runs on the writer goroutine when op's write (and sync) finished.
func (op *appendOp) complete(_ *Request, err error) {
	l := op.log
	l.mu.Lock()
	op.done, op.err = true, err
	if err != nil && !l.failing {
		l.failing, l.failErr = true, err
		l.logger.Error("segment write failed", "err", err, "offset", op.base, "pos", op.pos)
	}
	var ready *appendOp // completed ops, in order, to notify without the lock
	var readyTail *appendOp
	oldHW := l.hw
	for l.head != nil && l.head.done {
		h := l.head
		l.head = h.link
		if l.head == nil {
			l.tail = nil
		}
		h.link = nil
		l.segDoneLocked(h.seg)
		if h.err == nil && !l.failing {
			l.hw = h.next
			h.seg.durable = h.pos + h.size
			if l.cfg.Flush == FlushAsync {
				l.unsynced = true
			}
		} else {
			if h.err == nil {
				h.err = fmt.Errorf("%w: an earlier write failed: %v", ErrLogFailed, l.failErr)
			}
			if l.repair.seg == nil {
				l.repair = repairPoint{seg: h.seg, pos: h.pos, next: h.base}
			}
		}
		if readyTail == nil {
			ready = h
		} else {
			readyTail.link = h
		}
		readyTail = h
	}
	if l.head == nil && l.zeroSeg == nil && l.failing {
		l.repairLocked()
	}
	if l.idleLocked() {
		l.drained.Broadcast()
	}
	hw, onCommit := l.hw, l.onCommit
	l.mu.Unlock()

	for op := ready; op != nil; {
		nextOp := op.link
		c, base, err := op.c, op.base, op.err
		putBuf(op.buf)
		op.buf, op.c, op.seg, op.link, op.req.Data = nil, nil, nil, nil, nil
		appendOps.Put(op)
		if c != nil {
			if err != nil {
				base = -1
			}
			c.AppendDone(base, err)
		}
		op = nextOp
	}
	if hw != oldHW && onCommit != nil {
		onCommit(hw)
	}
}

// repairLocked truncates the log back to the first failed append once nothing
// is in flight, so no partial batch is ever readable, and lets appends resume.
func (l *Log) repairLocked() {
	rp := l.repair
	l.repair = repairPoint{}
	if rp.seg != nil {
		keep := l.segs[:0]
		for _, s := range l.segs {
			if s.base > rp.seg.base && s.base >= rp.next {
				s.deleted.Store(true)
				s.removeFiles()
				s.release()
				continue
			}
			keep = append(keep, s)
		}
		l.segs = keep
		if err := rp.seg.file.Truncate(rp.pos); err != nil {
			l.logger.Error("segment repair: truncate failed; log stays failed", "err", err)
			return
		}
		rp.seg.size, rp.seg.durable, rp.seg.zeroEnd = rp.pos, rp.pos, rp.pos
		rp.seg.truncateIndexes(rp.pos)
		l.next = rp.next
		l.logger.Warn("segment repaired after failed write", "next_offset", l.next, "pos", rp.pos)
	}
	l.failing, l.failErr = false, nil
}

// rollLocked seals the active segment and starts a new one at l.next.
func (l *Log) rollLocked() (*segment, error) {
	old := l.segs[len(l.segs)-1]
	s, err := createSegment(l.dir, l.next)
	if err != nil {
		return nil, err
	}
	l.segs = append(l.segs, s)
	old.sealed = true
	if old.inflight == 0 && old.zeroEnd > old.size {
		l.trimLocked(old)
	}
	idx := append([]indexEntry(nil), old.index...)
	tidx := append([]timeEntry(nil), old.timeIndex...)
	go func() {
		cp := segment{base: old.base, path: old.path, index: idx, timeIndex: tidx}
		if err := cp.writeIndexes(); err != nil {
			l.logger.Warn("segment: writing index", "err", err)
		}
	}()
	if l.cfg.Flush == FlushAsync && l.unsynced {
		l.startFlushLocked(old) // the new segment is empty: nothing else is unsynced
	}
	return s, nil
}

// Flush starts a background fdatasync of the active segment if completed
// writes are not yet synced and none is in flight (flush=async's background
// interval calls this).
func (l *Log) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !l.unsynced || l.flushing > 0 {
		return
	}
	l.startFlushLocked(l.segs[len(l.segs)-1])
}

// startFlushLocked fdatasyncs s on a goroutine of its own, not through the
// writer: under flush=async no append waits for it, and a sealed 1 GiB
// segment can take a second to sync, which would stall every other log's
// writes behind it on the shared writer thread.
func (l *Log) startFlushLocked(s *segment) {
	l.unsynced = false
	l.backgroundLocked(s, func() error { return fdatasync(int(s.file.Fd())) }, func(err error) {
		l.unsynced = true
		l.logger.Error("segment background flush failed", "err", err)
	})
}

// SyncFrom fdatasyncs every segment holding offsets at or after from and
// returns once they are durable. Under flush=async a completed append is
// only written; a caller about to act on its durability (the metadata
// catalog moving its start past a snapshot it just wrote) syncs first.
func (l *Log) SyncFrom(from int64) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrLogClosed
	}
	segs := append([]*segment(nil), l.segs[max(l.segmentForLocked(from), 0):]...)
	for _, s := range segs {
		s.refs.Add(1)
	}
	l.mu.Unlock()
	var firstErr error
	for _, s := range segs {
		if err := fdatasync(int(s.file.Fd())); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("segment: sync %s: %w", s.path, err)
		}
		s.release()
	}
	return firstErr
}

// fdatasync retries EINTR.
func fdatasync(fd int) error {
	for {
		err := unix.Fdatasync(fd)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Close waits for in-flight appends, syncs, writes the indexes and a clean
// shutdown marker, and closes the files.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for !l.idleLocked() {
		l.drained.Wait()
	}
	var firstErr error
	if len(l.segs) > 0 {
		active := l.segs[len(l.segs)-1]
		if active.zeroEnd > active.size {
			if err := active.file.Truncate(active.size); err != nil {
				firstErr = fmt.Errorf("segment: cutting the preallocated tail: %w", err)
			}
			active.zeroEnd = active.size
		}
		if err := active.file.Sync(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("segment: sync on close: %w", err)
		}
		for _, s := range l.segs {
			if err := s.writeIndexes(); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr == nil && !l.failing {
		os.WriteFile(filepath.Join(l.dir, cleanMarker), nil, 0o644)
	}
	l.mu.Unlock()
	l.closeFiles()
	return firstErr
}

func (l *Log) closeFiles() {
	l.mu.Lock()
	segs := l.segs
	l.segs = nil
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
}

// Remove closes the log and deletes its directory.
func (l *Log) Remove() error {
	l.Close()
	return os.RemoveAll(l.dir)
}

const (
	cleanMarker     = ".clean-shutdown"
	startOffsetFile = "log-start-offset"
)

func (l *Log) writeStartOffset(off int64) error {
	p := filepath.Join(l.dir, startOffsetFile)
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.WriteString(strconv.FormatInt(off, 10)); err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (l *Log) readStartOffset() int64 {
	b, err := os.ReadFile(filepath.Join(l.dir, startOffsetFile))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

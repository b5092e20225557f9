package segment

import (
	"fmt"
	"os"
	"sort"
	"time"
)

// Range is a run of whole batches in one segment file, for sendfile or a
// copying read. Release it when done; the file stays open until then even if
// retention deletes the segment.
type Range struct {
	File        *os.File
	Pos         int64
	Len         int64
	FirstOffset int64 // base offset of the first batch in the range
	EndOffset   int64 // one past the last offset of the last batch in the range
	seg         *segment
}

// Release returns the range's hold on its segment file. Safe on a zero Range.
func (r *Range) Release() {
	if r.seg != nil {
		r.seg.release()
		r.seg = nil
	}
}

// segmentForLocked returns the segment holding offset (the last one whose
// base is <= offset).
func (l *Log) segmentForLocked(offset int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return i - 1
}

// Read returns the range of whole batches starting with the batch that holds
// offset, at most maxBytes long but always at least one batch. At the high
// watermark it returns an empty range; outside [start, hw] it returns
// ErrOffsetOutOfRange.
func (l *Log) Read(offset int64, maxBytes int) (Range, error) {
	var hdr [BatchHeaderBytes]byte
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Range{}, ErrLogClosed
	}
	if offset < l.start || offset > l.hw {
		start, hw := l.start, l.hw
		l.mu.RUnlock()
		return Range{}, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, start, hw)
	}
	if offset == l.hw {
		l.mu.RUnlock()
		return Range{FirstOffset: offset, EndOffset: offset}, nil
	}
	i := l.segmentForLocked(offset)
	if i < 0 {
		i = 0
	}
	for ; i < len(l.segs); i++ {
		s := l.segs[i]
		pos := int64(0)
		if offset >= s.base {
			pos = s.lookup(offset)
		}
		end := s.durable
		// Appends complete in offset order, so the durable end of s is
		// the high watermark unless s is sealed and whole.
		endOffset := l.hw
		if i+1 < len(l.segs) {
			endOffset = min(endOffset, l.segs[i+1].base)
		}
		s.refs.Add(1)
		l.mu.RUnlock()

		r, err := readRange(s, &hdr, offset, pos, end, endOffset, maxBytes)
		if err != nil || r.Len > 0 {
			if r.Len == 0 {
				s.release()
			}
			return r, err
		}
		s.release()
		l.mu.RLock()
	}
	l.mu.RUnlock()
	return Range{FirstOffset: offset, EndOffset: offset}, nil
}

// readRange scans batch headers in s from pos to find the batch holding
// offset, then extends the range by whole batches up to maxBytes. endOffset
// is the offset after the batch that ends at end.
func readRange(s *segment, hdr *[BatchHeaderBytes]byte, offset, pos, end, endOffset int64, maxBytes int) (Range, error) {
	r := Range{File: s.file, seg: s}
	for ; pos < end; pos += int64(r.Len) {
		h, err := s.readHeaderAt(pos, hdr[:])
		if err != nil {
			return Range{}, fmt.Errorf("segment: read header at %d: %w", pos, err)
		}
		r.Len = int64(h.Size())
		if h.LastOffset() >= offset {
			r.FirstOffset, r.EndOffset = h.BaseOffset, h.LastOffset()+1
			break
		}
	}
	if pos >= end {
		return Range{}, nil
	}
	r.Pos = pos
	limit := pos + int64(maxBytes)
	if limit >= end {
		r.Len, r.EndOffset = end-pos, endOffset
		return r, nil
	}
	// Extend by whole batches from the last indexed boundary before limit.
	p := s.lookupPos(limit)
	if p < pos+r.Len {
		p = pos + r.Len
	}
	for jumped := p > pos+r.Len; p < limit || jumped; jumped = false {
		h, err := s.readHeaderAt(p, hdr[:])
		if err != nil {
			return Range{}, fmt.Errorf("segment: read header at %d: %w", p, err)
		}
		if p+int64(h.Size()) > limit {
			r.EndOffset = h.BaseOffset // the first batch left out
			break
		}
		p += int64(h.Size())
		r.EndOffset = h.LastOffset() + 1
	}
	r.Len = p - pos
	return r, nil
}

// ReadBytes appends to dst the whole batches Read(offset, maxBytes) returns.
func (l *Log) ReadBytes(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	r, err := l.Read(offset, maxBytes)
	if err != nil {
		return dst, err
	}
	defer r.Release()
	if r.Len == 0 {
		return dst, nil
	}
	n := len(dst)
	if cap(dst)-n < int(r.Len) {
		grown := make([]byte, n, n+int(r.Len))
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:n+int(r.Len)]
	if _, err := r.File.ReadAt(dst[n:], r.Pos); err != nil {
		return dst[:n], fmt.Errorf("segment: read: %w", err)
	}
	return dst, nil
}

// OffsetForTime returns the offset of the first record whose timestamp is
// >= ts, or -1 when every record is older.
func (l *Log) OffsetForTime(ts int64) (int64, error) {
	l.mu.RLock()
	var s *segment
	for _, cand := range l.segs {
		if cand.maxTS >= ts {
			s = cand
			break
		}
	}
	if s == nil {
		l.mu.RUnlock()
		return -1, nil
	}
	pos, end, start := s.lookupTime(ts), s.durable, l.start
	s.refs.Add(1)
	l.mu.RUnlock()
	defer s.release()

	var hdr [BatchHeaderBytes]byte
	for pos < end {
		h, err := s.readHeaderAt(pos, hdr[:])
		if err != nil {
			return -1, err
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= start {
			bp := getBuf(h.Size())
			defer putBuf(bp)
			if _, err := s.file.ReadAt(*bp, pos); err != nil {
				return -1, err
			}
			found := int64(-1)
			errStop := fmt.Errorf("stop")
			err := ForEachRecord(*bp, func(r *Record) error {
				if r.Timestamp >= ts && r.Offset >= start {
					found = r.Offset
					return errStop
				}
				return nil
			})
			if found >= 0 {
				return found, nil
			}
			if err != nil && err != errStop {
				return -1, err
			}
		}
		pos += int64(h.Size())
	}
	return -1, nil
}

// Retain deletes whole segments (never the active one) older than the
// retention age or beyond the retention bytes, and returns how many went.
func (l *Log) Retain(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	n := 0
	for len(l.segs) > 1 {
		s := l.segs[0]
		byAge := l.cfg.RetentionAge > 0 && s.maxTS >= 0 && now.Sub(time.UnixMilli(s.maxTS)) > l.cfg.RetentionAge
		byBytes := l.cfg.RetentionBytes > 0 && total > l.cfg.RetentionBytes
		if !byAge && !byBytes {
			break
		}
		l.deleteOldestLocked()
		total -= s.size
		n++
	}
	return n
}

func (l *Log) deleteOldestLocked() {
	s := l.segs[0]
	l.segs = l.segs[1:]
	if next := l.segs[0].base; next > l.start {
		l.start = next
	}
	s.deleted.Store(true)
	s.removeFiles()
	s.release()
}

// DeleteBefore moves the log start offset to offset (Kafka DeleteRecords),
// deleting segments wholly below it. offset may not pass the high watermark.
func (l *Log) DeleteBefore(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > l.hw || offset < 0 {
		return fmt.Errorf("%w: %d past the high watermark %d", ErrOffsetOutOfRange, offset, l.hw)
	}
	if offset <= l.start {
		return nil
	}
	if err := l.writeStartOffset(offset); err != nil {
		return fmt.Errorf("segment: persist start offset: %w", err)
	}
	l.start = offset
	for len(l.segs) > 1 && l.segs[1].base <= offset {
		l.deleteOldestLocked()
	}
	l.start = offset
	return nil
}

// Stats is a snapshot for metrics.
type Stats struct {
	Segments int
	Bytes    int64
}

// Stats returns the segment count and bytes on disk.
func (l *Log) Stats() Stats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := Stats{Segments: len(l.segs)}
	for _, s := range l.segs {
		st.Bytes += s.size
	}
	return st
}

// ScanRecords calls fn for every record from offset from up to the high
// watermark as of the call, oldest first, reading chunkBytes at a time and
// skipping control batches: the replay of a log's contents on start (the
// metadata catalog, internal logs). The record is valid only during fn; an
// error from fn or the read stops the scan and is returned.
func (l *Log) ScanRecords(from int64, chunkBytes int, fn func(r *Record) error) error {
	_, hw, _ := l.Offsets()
	var buf []byte
	for off := from; off < hw; {
		var err error
		if buf, err = l.ReadBytes(buf[:0], off, chunkBytes); err != nil {
			return err
		}
		next := off
		for rest := buf; len(rest) >= BatchHeaderBytes; {
			h, err := ParseBatchHeader(rest)
			if err != nil {
				return err
			}
			size := h.Size()
			if size > len(rest) || size < BatchHeaderBytes {
				break
			}
			if h.Attributes&AttrControl == 0 {
				err = ForEachRecord(rest[:size], func(r *Record) error {
					if r.Offset < off {
						return nil // the first batch may begin before from
					}
					return fn(r)
				})
				if err != nil {
					return err
				}
			}
			next = h.LastOffset() + 1
			rest = rest[size:]
		}
		if next <= off {
			break
		}
		off = next
	}
	return nil
}

package segment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// recover opens every segment in l.dir. The newest segment (and, after an
// unclean shutdown, the one before it, which may have had writes in flight
// when the log rolled) is scanned batch by batch with full validation and
// truncated at the first torn or corrupt batch; segments after a truncation
// are removed. Indexes are loaded when consistent and rebuilt otherwise.
func (l *Log) recover() error {
	bases, err := listSegments(l.dir)
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	markerPath := filepath.Join(l.dir, cleanMarker)
	_, statErr := os.Stat(markerPath)
	clean := statErr == nil
	os.Remove(markerPath)
	l.start = l.readStartOffset()

	if len(bases) == 0 {
		s, err := createSegment(l.dir, l.start)
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		l.next, l.hw = l.start, l.start
		return nil
	}

	scanFrom := len(bases) - 1
	if !clean && len(bases) > 1 {
		scanFrom = len(bases) - 2
	}
	for i, base := range bases {
		path := segmentName(l.dir, base, ".log")
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("segment: open %s: %w", path, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("segment: stat %s: %w", path, err)
		}
		s := &segment{base: base, path: path, file: f, size: st.Size(), created: st.ModTime(), maxTS: -1}
		s.refs.Store(1)
		l.segs = append(l.segs, s)

		if i < scanFrom && s.loadIndexes() {
			s.durable = s.size
			continue
		}
		validate := i >= scanFrom
		end, next, err := l.scanSegment(s, validate)
		if err != nil {
			return err
		}
		if end < s.size {
			if zeroTail(f, end) {
				l.logger.Info("segment recovery: cutting the preallocated zero tail",
					"segment", filepath.Base(path), "kept_bytes", end, "dropped_bytes", s.size-end)
			} else {
				l.logger.Warn("segment recovery: truncating torn or corrupt tail",
					"segment", filepath.Base(path), "kept_bytes", end, "dropped_bytes", s.size-end)
			}
			if err := f.Truncate(end); err != nil {
				return fmt.Errorf("segment: truncate %s: %w", path, err)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("segment: sync %s: %w", path, err)
			}
			s.size = end
			// Anything after a torn segment follows a hole: drop it.
			for _, later := range bases[i+1:] {
				l.logger.Warn("segment recovery: removing segment after a torn one", "base", later)
				ls := segment{base: later, path: segmentName(l.dir, later, ".log")}
				ls.removeFiles()
			}
			bases = bases[:i+1]
		}
		s.durable = s.size
		if i == len(bases)-1 {
			l.next = next
		}
		if validate {
			if err := s.writeIndexes(); err != nil {
				l.logger.Warn("segment: writing rebuilt index", "err", err)
			}
		}
		if i == len(bases)-1 {
			break
		}
	}
	last := l.segs[len(l.segs)-1]
	if last.size == 0 {
		l.next = last.base
	}
	if l.next < last.base {
		l.next = last.base
	}
	if l.start < l.segs[0].base {
		l.start = l.segs[0].base
	}
	if l.start > l.next {
		l.start = l.next
	}
	l.hw = l.next
	return nil
}

// scanSegment reads s from the start, rebuilding its indexes. With validate it
// checks every batch's CRC and stops at the first bad one. It returns the end
// of the last whole batch and the offset after it.
func (l *Log) scanSegment(s *segment, validate bool) (end, next int64, err error) {
	s.index, s.timeIndex, s.sinceIdx, s.maxTS = s.index[:0], s.timeIndex[:0], 0, -1
	next = s.base
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(s.file, 1<<20)
	var hdr [BatchHeaderBytes]byte
	var body []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return end, next, nil
			}
			return 0, 0, fmt.Errorf("segment: scan %s: %w", s.path, err)
		}
		h, _ := ParseBatchHeader(hdr[:])
		size := h.Size()
		if h.Length < BatchHeaderBytes-batchLogOverheadBytes || size > BatchBytesMax || h.Magic != 2 ||
			end+int64(size) > s.size || h.BaseOffset < next {
			return end, next, nil
		}
		if validate {
			if cap(body) < size {
				body = make([]byte, size)
			}
			body = body[:size]
			copy(body, hdr[:])
			if _, err := io.ReadFull(r, body[BatchHeaderBytes:]); err != nil {
				return end, next, nil
			}
			if _, _, err := ValidateBatch(body); err != nil {
				return end, next, nil
			}
		} else if _, err := r.Discard(size - BatchHeaderBytes); err != nil {
			return end, next, nil
		}
		s.noteBatch(&h, end, size, l.cfg.IndexIntervalBytes)
		end += int64(size)
		next = h.LastOffset() + 1
	}
}

// zeroTail reports whether the bytes after end start with a zeroed batch
// header: preallocation (Config.PreallocBytes) or a write that never reached
// the disk, not a corrupt batch.
func zeroTail(f *os.File, end int64) bool {
	var hdr [BatchHeaderBytes]byte
	n, _ := f.ReadAt(hdr[:], end)
	for _, b := range hdr[:n] {
		if b != 0 {
			return false
		}
	}
	return n > 0
}

package segment

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"
)

// One segment: <base>.log holds whole batches back to back; <base>.index holds
// sparse (relative offset uint32, position uint32) entries; <base>.timeindex
// holds (max timestamp int64, relative offset uint32) entries. Both indexes are
// kept in memory and written out when the segment is sealed or the log closes;
// they are rebuilt from the .log whenever missing or inconsistent.
type segment struct {
	base    int64
	path    string // .log path
	file    *os.File
	size    int64 // bytes assigned (written or in flight)
	durable int64 // bytes written (and synced under flush=sync): readable
	created time.Time
	maxTS   int64 // largest batch max timestamp, -1 if none

	index     []indexEntry
	timeIndex []timeEntry
	sinceIdx  int64 // bytes since the last index entry

	refs    atomic.Int32 // 1 for the log + 1 per outstanding Range
	deleted atomic.Bool

	// Preallocation (Config.PreallocBytes), guarded by the Log's mutex.
	zeroEnd  int64 // the file holds data or zeros up to here
	inflight int32 // appends and zero-fills submitted and not yet completed
	sealed   bool  // rolled: its zero tail is cut once inflight reaches 0
}

type indexEntry struct {
	rel uint32 // offset - base (of a batch's base offset)
	pos uint32
}

type timeEntry struct {
	ts  int64
	rel uint32
}

const (
	indexEntryBytes     = 8
	timeIndexEntryBytes = 12
)

func segmentName(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

// listSegments returns the base offsets of the .log files in dir, ascending.
func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		var base int64
		name := e.Name()
		if len(name) != 24 || filepath.Ext(name) != ".log" {
			continue
		}
		if _, err := fmt.Sscanf(name, "%020d.log", &base); err == nil {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

func createSegment(dir string, base int64) (*segment, error) {
	path := segmentName(dir, base, ".log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: create %s: %w", path, err)
	}
	s := &segment{base: base, path: path, file: f, created: time.Now(), maxTS: -1}
	s.refs.Store(1)
	return s, nil
}

// noteBatch records a batch appended at pos in the in-memory indexes.
func (s *segment) noteBatch(h *BatchHeader, pos int64, size int, intervalBytes int64) {
	if len(s.index) == 0 || s.sinceIdx >= intervalBytes {
		s.index = append(s.index, indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		if h.MaxTimestamp > s.maxTS {
			s.timeIndex = append(s.timeIndex, timeEntry{ts: h.MaxTimestamp, rel: uint32(h.BaseOffset - s.base)})
		}
		s.sinceIdx = 0
	}
	s.sinceIdx += int64(size)
	if h.MaxTimestamp > s.maxTS {
		s.maxTS = h.MaxTimestamp
	}
}

// lookup returns the position of the last indexed batch at or before offset.
func (s *segment) lookup(offset int64) int64 {
	rel := offset - s.base
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// lookupPos returns the last indexed batch boundary at or before pos.
func (s *segment) lookupPos(pos int64) int64 {
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].pos) > pos })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// lookupTime returns the position of a batch at or before the first batch
// whose max timestamp is >= ts.
func (s *segment) lookupTime(ts int64) int64 {
	i := sort.Search(len(s.timeIndex), func(i int) bool { return s.timeIndex[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return s.lookup(s.base + int64(s.timeIndex[i-1].rel))
}

// truncateIndexes drops index entries at or past pos.
func (s *segment) truncateIndexes(pos int64) {
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].pos) >= pos })
	if i < len(s.index) {
		cut := s.index[i].rel
		s.index = s.index[:i]
		j := sort.Search(len(s.timeIndex), func(j int) bool { return s.timeIndex[j].rel >= cut })
		s.timeIndex = s.timeIndex[:j]
	}
	s.sinceIdx = 0
}

// writeIndexes persists both indexes (best effort: they are rebuildable).
func (s *segment) writeIndexes() error {
	idx := make([]byte, 0, len(s.index)*indexEntryBytes)
	for _, e := range s.index {
		idx = binary.BigEndian.AppendUint32(idx, e.rel)
		idx = binary.BigEndian.AppendUint32(idx, e.pos)
	}
	tidx := make([]byte, 0, len(s.timeIndex)*timeIndexEntryBytes)
	for _, e := range s.timeIndex {
		tidx = binary.BigEndian.AppendUint64(tidx, uint64(e.ts))
		tidx = binary.BigEndian.AppendUint32(tidx, e.rel)
	}
	dir := filepath.Dir(s.path)
	if err := os.WriteFile(segmentName(dir, s.base, ".index"), idx, 0o644); err != nil {
		return err
	}
	return os.WriteFile(segmentName(dir, s.base, ".timeindex"), tidx, 0o644)
}

// loadIndexes reads both index files and checks them against the log size;
// it reports false when they must be rebuilt.
func (s *segment) loadIndexes() bool {
	dir := filepath.Dir(s.path)
	idx, err1 := os.ReadFile(segmentName(dir, s.base, ".index"))
	tidx, err2 := os.ReadFile(segmentName(dir, s.base, ".timeindex"))
	if err1 != nil || err2 != nil || len(idx)%indexEntryBytes != 0 || len(tidx)%timeIndexEntryBytes != 0 {
		return false
	}
	if s.size > 0 && len(idx) == 0 {
		return false
	}
	s.index = s.index[:0]
	var lastPos int64 = -1
	var lastRel int64 = -1
	for p := 0; p < len(idx); p += indexEntryBytes {
		e := indexEntry{rel: binary.BigEndian.Uint32(idx[p:]), pos: binary.BigEndian.Uint32(idx[p+4:])}
		if int64(e.pos) <= lastPos || int64(e.rel) < lastRel || int64(e.pos) >= s.size {
			s.index = s.index[:0]
			return false
		}
		lastPos, lastRel = int64(e.pos), int64(e.rel)
		s.index = append(s.index, e)
	}
	s.timeIndex = s.timeIndex[:0]
	for p := 0; p < len(tidx); p += timeIndexEntryBytes {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(tidx[p:])), rel: binary.BigEndian.Uint32(tidx[p+8:])}
		if int64(e.rel) > lastRel {
			s.index, s.timeIndex = s.index[:0], s.timeIndex[:0]
			return false
		}
		s.timeIndex = append(s.timeIndex, e)
		if e.ts > s.maxTS {
			s.maxTS = e.ts
		}
	}
	return true
}

// release drops one reference; the last one closes the file.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.file.Close()
	}
}

func (s *segment) removeFiles() {
	dir := filepath.Dir(s.path)
	os.Remove(s.path)
	os.Remove(segmentName(dir, s.base, ".index"))
	os.Remove(segmentName(dir, s.base, ".timeindex"))
}

// readHeaderAt reads the batch header at pos.
func (s *segment) readHeaderAt(pos int64, buf []byte) (BatchHeader, error) {
	if _, err := s.file.ReadAt(buf[:BatchHeaderBytes], pos); err != nil {
		return BatchHeader{}, err
	}
	return ParseBatchHeader(buf[:BatchHeaderBytes])
}

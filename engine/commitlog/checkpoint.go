package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/crc32"

	"quartet/segment"
)

const (
	checkpointName  = "checkpoint"
	checkpointMagic = "QCQ1"
	cqExt           = ".cq"
	entryBytes      = 8
	scanReadBytes   = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadCheckpoint = errors.New("commitlog: bad checkpoint")

type ckQueue struct {
	topic   string
	id      int
	entries int64
}

type ckFile struct {
	end    int64
	queues []ckQueue
}

func queueFileName(topic string, id int) string {
	return topic + "@" + strconv.Itoa(id) + cqExt
}

func encodeCheckpoint(ck *ckFile) []byte {
	be := binary.BigEndian
	b := []byte(checkpointMagic)
	b = be.AppendUint64(b, uint64(ck.end))
	b = be.AppendUint32(b, uint32(len(ck.queues)))
	for _, q := range ck.queues {
		b = be.AppendUint16(b, uint16(len(q.topic)))
		b = append(b, q.topic...)
		b = be.AppendUint32(b, uint32(q.id))
		b = be.AppendUint64(b, uint64(q.entries))
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCheckpoint(b []byte) (*ckFile, error) {
	be := binary.BigEndian
	if len(b) < 4+8+4+4 || string(b[:4]) != checkpointMagic {
		return nil, errBadCheckpoint
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != be.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: crc", errBadCheckpoint)
	}
	ck := &ckFile{end: int64(be.Uint64(body[4:]))}
	n := be.Uint32(body[12:])
	p := body[16:]
	for i := uint32(0); i < n; i++ {
		if len(p) < 2 {
			return nil, errBadCheckpoint
		}
		tl := int(be.Uint16(p))
		if len(p) < 2+tl+12 {
			return nil, errBadCheckpoint
		}
		q := ckQueue{topic: string(p[2 : 2+tl]), id: int(be.Uint32(p[2+tl:])), entries: int64(be.Uint64(p[6+tl:]))}
		if !ValidTopic(q.topic) || q.entries < 0 {
			return nil, errBadCheckpoint
		}
		ck.queues = append(ck.queues, q)
		p = p[14+tl:]
	}
	if len(p) != 0 || ck.end < 0 {
		return nil, errBadCheckpoint
	}
	return ck, nil
}

// checkpoint appends the entries indexed since the last checkpoint to the
// queue files, fdatasyncs them, then replaces the checkpoint file.
func (s *Store) checkpoint() error {
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	type part struct {
		q     *Queue
		from  int64 // first queue offset to write
		ents  []int64
		total int64
	}
	var parts []part
	var ck ckFile
	s.mu.Lock()
	ck.end = s.end
	s.qmu.RLock()
	for _, q := range s.queues {
		q.mu.Lock()
		total := q.maxLocked()
		if total > 0 {
			p := part{q: q, from: q.persisted, total: total}
			if total > q.persisted {
				// memBase <= persisted: only persisted entries leave memory.
				p.ents = append([]int64(nil), q.ents[q.persisted-q.memBase:]...)
			}
			parts = append(parts, p)
			ck.queues = append(ck.queues, ckQueue{topic: q.Topic, id: q.ID, entries: total})
		}
		q.mu.Unlock()
	}
	s.qmu.RUnlock()
	s.mu.Unlock()
	if ck.end == s.ckEnd {
		return nil
	}
	var buf []byte
	for _, p := range parts {
		if len(p.ents) == 0 {
			continue
		}
		p.q.mu.Lock()
		f := p.q.file
		p.q.mu.Unlock()
		if f == nil {
			var err error
			f, err = os.OpenFile(filepath.Join(s.dir, queueFileName(p.q.Topic, p.q.ID)), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return fmt.Errorf("commitlog: %w", err)
			}
			p.q.mu.Lock()
			p.q.file = f
			p.q.mu.Unlock()
		}
		buf = buf[:0]
		for _, c := range p.ents {
			buf = binary.BigEndian.AppendUint64(buf, uint64(c))
		}
		if _, err := f.WriteAt(buf, p.from*entryBytes); err != nil {
			return fmt.Errorf("commitlog: write %s: %w", f.Name(), err)
		}
		if err := fdatasync(f); err != nil {
			return fmt.Errorf("commitlog: sync %s: %w", f.Name(), err)
		}
		s.ckSync.Add(1)
	}
	if err := s.writeCheckpoint(&ck); err != nil {
		return err
	}
	for _, p := range parts {
		p.q.mu.Lock()
		if p.total > p.q.persisted {
			p.q.persisted = p.total
		}
		if n := len(p.q.ents) - memEntriesMax; n > 0 {
			p.q.dropMemLocked(int64(n))
		}
		p.q.mu.Unlock()
	}
	s.ckEnd = ck.end
	return nil
}

func (s *Store) writeCheckpoint(ck *ckFile) error {
	tmp := filepath.Join(s.dir, checkpointName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	_, err = f.Write(encodeCheckpoint(ck))
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// No fsync of the directory: if a crash loses the rename, the
		// previous checkpoint is found, the queue files are cut back to
		// its counts and the commit log is scanned from its end.
		err = os.Rename(tmp, filepath.Join(s.dir, checkpointName))
	}
	if err != nil {
		return fmt.Errorf("commitlog: checkpoint: %w", err)
	}
	s.ckSync.Add(1)
	return nil
}

func fdatasync(f *os.File) error { return f.Sync() }

// recover rebuilds the consume queues: the checkpointed entries from the queue
// files, then the rest by scanning the commit log. It returns the number of
// records scanned.
func (s *Store) recover() (int64, error) {
	start, hw := s.log.StartOffset(), s.log.HighWatermark()
	ck, err := s.loadCheckpoint()
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.lg.Warn("consume queue checkpoint unusable, rebuilding from the commit log", "err", err)
		}
		ck = nil
	}
	keep := map[string]bool{}
	end := start
	if ck != nil {
		for _, c := range ck.queues {
			q := s.Queue(c.topic, c.id)
			name := queueFileName(c.topic, c.id)
			if err := q.load(filepath.Join(s.dir, name), c.entries, start, hw); err != nil {
				s.lg.Warn("consume queue file unusable, rebuilding from the commit log", "file", name, "err", err)
				ck = nil
				break
			}
			keep[name] = true
		}
	}
	if ck == nil {
		// Start over: every queue from the whole log.
		for _, q := range s.queues {
			if q.file != nil {
				q.file.Close()
			}
		}
		s.queues = map[qkey]*Queue{}
		keep = map[string]bool{}
	} else {
		end = ck.end
		if end > hw {
			end = hw // the log lost its tail (unclean stop under flush=async)
		}
		if end < start {
			end = start
		}
		s.ckEnd = -1 // force the next checkpoint
	}
	ents, _ := os.ReadDir(s.dir)
	for _, de := range ents {
		if n := de.Name(); strings.HasSuffix(n, cqExt) && !keep[n] || n == checkpointName+".tmp" {
			os.Remove(filepath.Join(s.dir, n))
		}
	}
	scanned, err := s.scan(end, hw)
	s.end = hw
	return scanned, err
}

func (s *Store) loadCheckpoint() (*ckFile, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, checkpointName))
	if err != nil {
		return nil, err
	}
	return decodeCheckpoint(b)
}

// load reads the first n entries of the queue file, keeps those in
// [start, hw) and cuts the file after the last one kept.
func (q *Queue) load(path string, n, start, hw int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() < n*entryBytes {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%w: %d bytes, %d entries expected", errBadCheckpoint, fi.Size(), n)
		}
		return err
	}
	// Entries past the log's end were lost with its tail: find the cut.
	keepN := n
	var e [entryBytes]byte
	lo, hi := int64(0), n
	for lo < hi { // first entry >= hw
		mid := lo + (hi-lo)/2
		if _, err := f.ReadAt(e[:], mid*entryBytes); err != nil {
			f.Close()
			return err
		}
		if int64(binary.BigEndian.Uint64(e[:])) >= hw {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	keepN = lo
	lo, hi = 0, keepN
	for lo < hi { // first entry >= start
		mid := lo + (hi-lo)/2
		if _, err := f.ReadAt(e[:], mid*entryBytes); err != nil {
			f.Close()
			return err
		}
		if int64(binary.BigEndian.Uint64(e[:])) >= start {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	first := lo
	memFrom := max(first, keepN-int64(memEntriesMax))
	b := make([]byte, (keepN-memFrom)*entryBytes)
	if _, err := f.ReadAt(b, memFrom*entryBytes); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(keepN * entryBytes); err != nil {
		f.Close()
		return err
	}
	q.min, q.memBase = first, memFrom
	q.ents = make([]int64, 0, len(b)/entryBytes+1024)
	prev := int64(-1)
	for i := 0; i < len(b); i += entryBytes {
		c := int64(binary.BigEndian.Uint64(b[i:]))
		if c <= prev {
			f.Close()
			return fmt.Errorf("%w: entries not ascending", errBadCheckpoint)
		}
		prev = c
		q.ents = append(q.ents, c)
	}
	q.persisted = keepN
	q.file = f
	return nil
}

// scan indexes the records of the commit log in [from, to).
func (s *Store) scan(from, to int64) (int64, error) {
	var n int64
	buf := make([]byte, 0, scanReadBytes)
	for cur := from; cur < to; {
		b, err := s.log.ReadBytes(buf[:0], cur, scanReadBytes)
		if err != nil {
			return n, fmt.Errorf("commitlog: scan at %d: %w", cur, err)
		}
		buf = b[:0]
		next := cur
		err = segment.WalkRecords(b, func(r *segment.Record) error {
			if r.Offset < cur {
				return nil
			}
			next = r.Offset + 1
			t, id, ok := parseKey(r.Key)
			if !ok {
				s.lg.Warn("commit log record without a destination, skipped", "offset", r.Offset)
				return nil
			}
			q := s.Queue(t, id)
			q.ents = append(q.ents, r.Offset)
			s.bytesIn.Add(int64(len(r.Value)) + 64)
			s.recsIn.Add(1)
			n++
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("commitlog: scan at %d: %w", cur, err)
		}
		if next == cur {
			h, herr := segment.ParseBatchHeader(b)
			if herr != nil || h.LastOffset() < cur {
				break
			}
			next = h.LastOffset() + 1
		}
		cur = next
	}
	return n, nil
}

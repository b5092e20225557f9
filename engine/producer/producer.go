package producer

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"quartet/segment"
)

// Kafka error codes returned by Check.
const (
	ErrNone             int16 = 0
	ErrOutOfOrderSeq    int16 = 45
	ErrDuplicateSeq     int16 = 46
	ErrInvalidEpoch     int16 = 47
	ErrCorrupt          int16 = 2
	batchesKept               = 5
	rebuildRecordsMax         = 1 << 20
	rebuildReadBytesMax       = 1 << 20
)

// Log is what the state is rebuilt from (an engine partition).
type Log interface {
	ReadBytes(dst []byte, offset int64, maxBytes int) ([]byte, error)
	HighWatermark() int64
	StartOffset() int64
}

type batchMeta struct {
	firstSeq, lastSeq int32
	offset            int64 // base offset; -1 while the append is in flight
	failed            bool
}

type entry struct {
	epoch   int16
	batches [batchesKept]batchMeta
	n       int // batches used
	next    int // ring position of the next write
}

func (e *entry) last() *batchMeta {
	if e.n == 0 {
		return nil
	}
	return &e.batches[(e.next+batchesKept-1)%batchesKept]
}

func (e *entry) push(b batchMeta) *batchMeta {
	p := &e.batches[e.next]
	*p = b
	e.next = (e.next + 1) % batchesKept
	if e.n < batchesKept {
		e.n++
	}
	return p
}

// Partition is one partition's producer state. Lock it around Check, the
// log append and Record so that check-then-append is atomic.
type Partition struct {
	sync.Mutex
	loaded    bool
	producers map[int64]*entry
}

// Manager owns the state of every partition.
type Manager struct {
	log    *slog.Logger
	mu     sync.Mutex
	parts  map[any]*Partition
	lastID int64
}

// New returns an empty manager. e is unused for now (kept for the contract
// of future durable snapshots); it may be nil.
func New(_ any, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{log: log, parts: map[any]*Partition{}}
}

// NextID returns a fresh producer id.
func (m *Manager) NextID() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := time.Now().UnixMicro()
	if id <= m.lastID {
		id = m.lastID + 1
	}
	m.lastID = id
	return id
}

// State returns the state of the partition identified by key, rebuilding it
// from l on first use. The caller locks the returned Partition.
func (m *Manager) State(key any, l Log) *Partition {
	m.mu.Lock()
	p := m.parts[key]
	if p == nil {
		p = &Partition{producers: map[int64]*entry{}}
		m.parts[key] = p
	}
	m.mu.Unlock()
	p.Lock()
	if !p.loaded {
		p.loaded = true
		n := p.rebuild(l)
		if n > 0 {
			m.log.Debug("kafka producer state rebuilt", "producers", len(p.producers), "batches", n)
		}
	}
	p.Unlock()
	return p
}

// Forget drops a partition's state (topic deleted).
func (m *Manager) Forget(key any) {
	m.mu.Lock()
	delete(m.parts, key)
	m.mu.Unlock()
}

func (p *Partition) rebuild(l Log) int {
	if l == nil {
		return 0
	}
	hw := l.HighWatermark()
	off := max(l.StartOffset(), hw-rebuildRecordsMax)
	var buf []byte
	n := 0
	for off < hw {
		var err error
		buf, err = l.ReadBytes(buf[:0], off, rebuildReadBytesMax)
		if err != nil || len(buf) == 0 {
			break
		}
		next := off
		for b := buf; len(b) >= segment.BatchHeaderBytes; {
			h, err := segment.ParseBatchHeader(b)
			if err != nil || h.Size() > len(b) || h.Size() <= 0 {
				break
			}
			b = b[h.Size():]
			next = h.LastOffset() + 1
			if h.ProducerID < 0 || h.BaseOffset < off && h.LastOffset() < off {
				continue
			}
			p.apply(h.ProducerID, h.ProducerEpoch, h.BaseSequence, lastSeq(h.BaseSequence, h.LastOffsetDelta), h.BaseOffset)
			n++
		}
		if next <= off {
			break
		}
		off = next
	}
	return n
}

func (p *Partition) apply(pid int64, epoch int16, first, last int32, offset int64) *batchMeta {
	e := p.producers[pid]
	if e == nil || epoch != e.epoch {
		e = &entry{epoch: epoch}
		p.producers[pid] = e
	}
	return e.push(batchMeta{firstSeq: first, lastSeq: last, offset: offset})
}

func lastSeq(base, delta int32) int32 {
	s := int64(base) + int64(delta)
	if s > math.MaxInt32 {
		s -= math.MaxInt32 + 1
	}
	return int32(s)
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// Check decides what to do with an idempotent batch (caller holds the lock).
// It returns ErrNone to append it; a duplicate returns ErrNone with dup true
// and the original base offset (or ErrDuplicateSeq when the original append
// is still in flight); otherwise the Kafka error code.
func (p *Partition) Check(h *segment.BatchHeader) (code int16, dup bool, offset int64) {
	if h.ProducerID < 0 {
		return ErrNone, false, 0
	}
	e := p.producers[h.ProducerID]
	first, last := h.BaseSequence, lastSeq(h.BaseSequence, h.LastOffsetDelta)
	if e == nil {
		return ErrNone, false, 0 // unknown producer (new, or expired state)
	}
	switch {
	case h.ProducerEpoch < e.epoch && !(e.epoch > 0x7000 && h.ProducerEpoch < 0x1000):
		return ErrInvalidEpoch, false, 0
	case h.ProducerEpoch != e.epoch:
		if first != 0 {
			return ErrOutOfOrderSeq, false, 0
		}
		return ErrNone, false, 0
	}
	for i := 0; i < e.n; i++ {
		b := &e.batches[i]
		if b.firstSeq == first && b.lastSeq == last && !b.failed {
			if b.offset < 0 {
				return ErrDuplicateSeq, true, -1
			}
			return ErrNone, true, b.offset
		}
	}
	if l := e.last(); l != nil && first != nextSeq(l.lastSeq) {
		return ErrOutOfOrderSeq, false, 0
	}
	return ErrNone, false, 0
}

// Pending is a recorded batch whose offset arrives with the append's
// completion.
type Pending struct {
	p     *Partition
	b     *batchMeta
	e     *entry
	first int32
}

// Record notes an appended batch (caller holds the lock); call Done on the
// result when the append completes.
func (p *Partition) Record(h *segment.BatchHeader) Pending {
	if h.ProducerID < 0 {
		return Pending{}
	}
	b := p.apply(h.ProducerID, h.ProducerEpoch, h.BaseSequence, lastSeq(h.BaseSequence, h.LastOffsetDelta), -1)
	return Pending{p: p, b: b, e: p.producers[h.ProducerID], first: h.BaseSequence}
}

// Done records the outcome of the append (takes the lock).
func (pd Pending) Done(offset int64, failed bool) {
	if pd.p == nil {
		return
	}
	pd.p.Lock()
	if pd.b.firstSeq != pd.first || pd.b.offset != -1 {
		// Overwritten by later batches: nothing to record.
	} else if failed {
		pd.b.failed = true
		// Let the producer retry the same sequence.
		if l := pd.e.last(); l == pd.b {
			pd.e.next = (pd.e.next + batchesKept - 1) % batchesKept
			pd.e.n--
		}
	} else {
		pd.b.offset = offset
	}
	pd.p.Unlock()
}

package engine

import (
	"sync"

	"quartet/segment"
)

// Partition is one ordered log of a topic.
type Partition struct {
	topic *Topic
	Index int32
	log   *segment.Log

	mu      sync.Mutex
	waiters []*waiter
}

type waiter struct {
	after int64
	fn    func()
	fired bool
}

// Topic is the partition's topic.
func (p *Partition) Topic() *Topic { return p.topic }

// Log is the partition's segment log.
func (p *Partition) Log() *segment.Log { return p.log }

// Append validates, copies and queues one or more RecordBatch v2; c is told
// the base offset once the batches are durable per the flush policy. It
// never blocks on I/O.
func (p *Partition) Append(batches []byte, c segment.Completer) error {
	return p.log.Append(batches, c)
}

// Read returns the file range of whole batches from offset (see segment.Log.Read).
func (p *Partition) Read(offset int64, maxBytes int) (segment.Range, error) {
	return p.log.Read(offset, maxBytes)
}

// ReadBytes appends the batches from offset to dst (a copying read).
func (p *Partition) ReadBytes(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	return p.log.ReadBytes(dst, offset, maxBytes)
}

// HighWatermark is the offset after the last readable record.
func (p *Partition) HighWatermark() int64 { return p.log.HighWatermark() }

// StartOffset is the first offset still held.
func (p *Partition) StartOffset() int64 { return p.log.StartOffset() }

// OffsetForTime is the first offset whose timestamp is >= ms, or -1.
func (p *Partition) OffsetForTime(ms int64) (int64, error) { return p.log.OffsetForTime(ms) }

// DeleteRecordsBefore moves the start offset forward (Kafka DeleteRecords).
func (p *Partition) DeleteRecordsBefore(offset int64) error { return p.log.DeleteBefore(offset) }

// Wait calls fn once, from any goroutine, when the high watermark passes
// after (HW > after). If it already has, fn runs before Wait returns. cancel
// reports whether it removed a waiter that had not fired.
func (p *Partition) Wait(after int64, fn func()) (cancel func() bool) {
	if p.log.HighWatermark() > after {
		fn()
		return func() bool { return false }
	}
	w := &waiter{after: after, fn: fn}
	p.mu.Lock()
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	// An append may have committed between the check and the registration.
	if p.log.HighWatermark() > after {
		p.committed(p.log.HighWatermark())
	}
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		if w.fired {
			return false
		}
		for i, x := range p.waiters {
			if x == w {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				break
			}
		}
		w.fired = true
		return true
	}
}

// committed runs on the writer goroutine when the high watermark advances.
func (p *Partition) committed(hw int64) {
	p.mu.Lock()
	if len(p.waiters) == 0 {
		p.mu.Unlock()
		return
	}
	var ready []*waiter
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		if hw > w.after {
			w.fired = true
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	for i := len(keep); i < len(p.waiters); i++ {
		p.waiters[i] = nil
	}
	p.waiters = keep
	p.mu.Unlock()
	for _, w := range ready {
		w.fn()
	}
}

// wakeAll fires every waiter (the partition is going away).
func (p *Partition) wakeAll() {
	p.mu.Lock()
	ws := p.waiters
	p.waiters = nil
	for _, w := range ws {
		w.fired = true
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.fn()
	}
}

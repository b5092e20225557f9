package mqtt

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine/session"
	"quartet/segment"
)

// liveLog is the engine internal log "mqtt-live" holding live batches (see
// liveBatch): QoS 1 messages routed to connected persistent sessions, one
// record per publisher read burst. A batch whose every entry was
// acknowledged (or moved elsewhere) is released: a release record (key
// "r", value = the batch record's offset) is appended with the next batch,
// or on its own when no batch was written within releaseIdle. The log start
// moves past released batches (whole segments are deleted), so the log
// holds little more than what subscribers have not yet acknowledged; a
// subscriber that holds messages for long (slow or stalled, still
// connected) would pin the log, so past LiveLogPinnedBytesMax the entries
// of the oldest batches are moved to per-message records. On start the log
// is read once: batches without a release record are restored into their
// sessions' queues.
type liveLog struct {
	l      *segment.Log
	log    *slog.Logger
	closed *atomic.Bool // the server's: nothing is written once set

	segmentBytes   int64
	pinnedBytesMax int64
	migrate        func(b []*session.Batch) // moves batches' entries to per-message records
	migrating      atomic.Bool

	mu       sync.Mutex
	bb       segment.BatchBuilder
	fifo     []int64                  // offsets of written batches, oldest first (released ones until popped)
	gone     map[int64]bool           // released batches still in fifo
	held     map[int64]*session.Batch // written batches not released
	released []int64                  // release records not yet appended
	relArmed bool                     // releaseTimer pending
	lastAdd  time.Time                // last append
	start    int64                    // log start last requested
	lastTrim time.Time
}

// liveTrimInterval bounds how often the log start is moved (it writes a file).
const liveTrimInterval = time.Second

var relKey = []byte{'r'}

func newLiveLog(l *segment.Log, cfg *Config, logger *slog.Logger, closed *atomic.Bool, migrate func([]*session.Batch)) *liveLog {
	l.SetConfig(segment.Config{SegmentBytes: cfg.LiveLogSegmentBytes})
	start, _, _ := l.Offsets()
	return &liveLog{l: l, log: logger, closed: closed, gone: map[int64]bool{}, held: map[int64]*session.Batch{}, start: start,
		segmentBytes: cfg.LiveLogSegmentBytes, pinnedBytesMax: cfg.LiveLogPinnedBytesMax, migrate: migrate}
}

// write appends batch b's record (payload) and any pending release records
// in one RecordBatch; done is called once it is durable. Called by
// session.Batch.Write with b's lock held.
func (ll *liveLog) write(b *session.Batch, payload []byte, now int64, done func(error)) {
	ll.mu.Lock()
	_, _, next := ll.l.Offsets()
	b.Off = next
	ll.bb.Reset()
	ts := now / int64(time.Millisecond)
	ll.bb.Add(ts, nil, payload, nil)
	ll.addReleasesLocked(ts)
	err := ll.l.Append(ll.bb.Bytes(), segment.DoneFunc(done))
	if err == nil {
		ll.fifo = append(ll.fifo, next)
		ll.held[next] = b
		ll.lastAdd = time.Now()
	}
	ll.mu.Unlock()
	if err != nil {
		done(fmt.Errorf("mqtt: live log: %w", err))
	}
}

func (ll *liveLog) addReleasesLocked(ts int64) {
	var v [8]byte
	for _, off := range ll.released {
		binary.BigEndian.PutUint64(v[:], uint64(off))
		ll.bb.Add(ts, relKey, v[:], nil)
	}
	ll.released = ll.released[:0]
}

// releaseIdle: a release waits for the next batch to carry its record,
// unless no batch was written for this long (then it is written at once).
const releaseIdle = 5 * time.Millisecond

// empty is session.Batch.Empty: the batch's last entry is gone.
func (ll *liveLog) empty(b *session.Batch) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.gone[b.Off] = true
	delete(ll.held, b.Off)
	ll.released = append(ll.released, b.Off)
	if now := time.Now(); now.Sub(ll.lastAdd) >= releaseIdle {
		ll.appendReleasesLocked(now)
	} else if !ll.relArmed {
		// no batch may come to carry it: write it in releaseIdle if
		// none did
		ll.relArmed = true
		time.AfterFunc(releaseIdle, ll.releaseTimer)
	}
}

func (ll *liveLog) releaseTimer() {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.relArmed = false
	if len(ll.released) > 0 {
		ll.appendReleasesLocked(time.Now())
	}
}

// appendReleasesLocked appends the pending release records on their own.
func (ll *liveLog) appendReleasesLocked(now time.Time) {
	if ll.closed.Load() {
		return
	}
	ll.bb.Reset()
	ll.addReleasesLocked(now.UnixMilli())
	if err := ll.l.Append(ll.bb.Bytes(), nil); err != nil {
		ll.log.Error("mqtt: live log release records", "err", err)
	}
	ll.lastAdd = now
}

// tick moves the log start past released batches and starts moving the
// entries of long-held batches (clock goroutine). Release records that no
// batch carried are written by releaseTimer.
func (ll *liveLog) tick(now time.Time) {
	ll.mu.Lock()
	i := 0
	for i < len(ll.fifo) && ll.gone[ll.fifo[i]] {
		delete(ll.gone, ll.fifo[i])
		i++
	}
	if i > 0 {
		ll.fifo = append(ll.fifo[:0], ll.fifo[i:]...)
	}
	_, hw, next := ll.l.Offsets()
	start := next
	if len(ll.fifo) > 0 {
		start = ll.fifo[0]
	}
	start = min(start, hw)
	trim := start > ll.start && now.Sub(ll.lastTrim) >= liveTrimInterval
	if trim {
		ll.start, ll.lastTrim = start, now
	}
	// Batches still holding messages pin the log from the oldest of them
	// on. Past pinnedBytesMax, the entries of the oldest half are moved to
	// per-message records, which frees those batches.
	var pinned []*session.Batch
	if next-start > 0 && ll.l.Stats().Bytes > ll.pinnedBytesMax && !ll.migrating.Load() {
		for _, off := range ll.fifo[:(len(ll.fifo)+1)/2] {
			if b := ll.held[off]; b != nil {
				pinned = append(pinned, b)
			}
		}
	}
	ll.mu.Unlock()
	if trim {
		if err := ll.l.DeleteBefore(start); err != nil {
			ll.log.Error("mqtt: live log trim", "err", err)
		}
	}
	if len(pinned) > 0 && ll.migrating.CompareAndSwap(false, true) {
		go func() {
			defer ll.migrating.Store(false)
			ll.migrate(pinned)
		}()
	}
}

// close appends the release records not yet written (Server.Close: the
// engine completes the append before it closes).
func (ll *liveLog) close() {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if len(ll.released) > 0 {
		ll.appendReleasesLocked(time.Now())
	}
}

// restored registers batch b read back from the log (load only, before
// any write).
func (ll *liveLog) restored(b *session.Batch) {
	ll.fifo = append(ll.fifo, b.Off)
	ll.held[b.Off] = b
}

// scan calls fn for every record of the log, oldest first (load only).
func (ll *liveLog) scan(fn func(off int64, key, value []byte) error) error {
	return ll.l.ScanRecords(ll.l.StartOffset(), 4<<20, func(r *segment.Record) error {
		return fn(r.Offset, r.Key, r.Value)
	})
}

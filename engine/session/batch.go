package session

import "sync"

// Batch is one durable record holding the messages of several entries
// (MQTT: the QoS 1 messages a publisher's read burst routed to connected
// persistent sessions, each message once however many sessions it went
// to). Every entry that points at it holds one reference; the record is
// deleted (Empty) when the last one is released after it was written, and
// never written at all when every entry was acknowledged first.
type Batch struct {
	mu      sync.Mutex
	refs    int32
	written bool
	// Off is where the record is stored (set by the store that writes it,
	// under its own lock).
	Off int64
	// Holders are the sessions with entries in the batch (set before it
	// is written), so its entries can be found to move them elsewhere.
	Holders []*Session
	// Empty is called (without the batch's lock) when the last reference
	// is released after Write issued the record.
	Empty func(b *Batch)
}

// Ref adds a reference (one per entry pointing at b).
func (b *Batch) Ref() {
	b.mu.Lock()
	b.refs++
	b.mu.Unlock()
}

// Release drops a reference.
func (b *Batch) Release() {
	b.mu.Lock()
	b.refs--
	if b.refs < 0 {
		b.mu.Unlock()
		panic("BUG: session: batch released twice")
	}
	empty := b.refs == 0 && b.written
	b.mu.Unlock()
	if empty && b.Empty != nil {
		b.Empty(b)
	}
}

// Write calls put (which issues the record's write) unless every
// reference is already gone, and reports whether it did. put runs under
// b's lock, so a release racing with it cannot issue the delete first.
func (b *Batch) Write(put func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs == 0 {
		return false
	}
	b.written = true
	put()
	return true
}

// Restored marks b as a record read back from storage holding refs entries.
func (b *Batch) Restored(refs int32) {
	b.mu.Lock()
	b.refs, b.written = refs, true
	b.mu.Unlock()
}

// Refs is the number of entries holding b (tests).
func (b *Batch) Refs() int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refs
}

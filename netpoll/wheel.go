package netpoll

import (
	"sync"
	"time"
)

// A hashed timing wheel. One wheel serves one gnet loop (or all std-net
// connections); a single ticker goroutine per Server advances every wheel and
// hands the expired timers to their loop in one batch. Timers cost one small
// struct each: no goroutine, no time.Timer.

const wheelSlots = 512

type timerState uint8

const (
	timerPending timerState = iota
	timerExpired            // taken off the wheel, waiting to run on the loop
	timerStopped
	timerDone
)

type wheelTimer struct {
	w          *wheel
	c          *conn
	fn         func(c Conn)
	rounds     int
	slot       int
	state      timerState
	prev, next *wheelTimer
}

// Stop cancels the timer; it reports whether fn had not run yet and now will not.
func (t *wheelTimer) Stop() bool {
	w := t.w
	w.mu.Lock()
	defer w.mu.Unlock()
	switch t.state {
	case timerPending:
		w.unlink(t)
		t.state = timerStopped
		return true
	case timerExpired:
		t.state = timerStopped
		return true
	}
	return false
}

type wheel struct {
	mu       sync.Mutex
	tick     time.Duration
	cur      int
	slots    [wheelSlots]*wheelTimer // heads of doubly linked lists
	n        int
	dispatch func(batch []*wheelTimer) // runs the batch on the owning loop(s)
	expired  []*wheelTimer
}

func newWheel(tick time.Duration, dispatch func([]*wheelTimer)) *wheel {
	return &wheel{tick: tick, dispatch: dispatch}
}

func (w *wheel) add(c *conn, d time.Duration, fn func(Conn)) *wheelTimer {
	// +1: the current tick is already partly over, and a timer must not fire early.
	ticks := int((d+w.tick-1)/w.tick) + 1
	t := &wheelTimer{w: w, c: c, fn: fn}
	w.mu.Lock()
	t.rounds = (ticks - 1) / wheelSlots
	t.slot = (w.cur + ticks) % wheelSlots
	t.next = w.slots[t.slot]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[t.slot] = t
	w.n++
	w.mu.Unlock()
	return t
}

func (w *wheel) unlink(t *wheelTimer) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.slot] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next = nil, nil
	w.n--
}

// advance moves the wheel one tick and dispatches what expired.
func (w *wheel) advance() {
	w.mu.Lock()
	if w.n == 0 {
		w.cur = (w.cur + 1) % wheelSlots
		w.mu.Unlock()
		return
	}
	w.cur = (w.cur + 1) % wheelSlots
	var batch []*wheelTimer
	for t := w.slots[w.cur]; t != nil; {
		next := t.next
		if t.rounds > 0 {
			t.rounds--
		} else {
			w.unlink(t)
			t.state = timerExpired
			batch = append(batch, t)
		}
		t = next
	}
	w.mu.Unlock()
	if len(batch) > 0 {
		w.dispatch(batch)
	}
}

// run is called on the owning loop for an expired timer.
func (t *wheelTimer) run() {
	w := t.w
	w.mu.Lock()
	if t.state != timerExpired {
		w.mu.Unlock()
		return
	}
	t.state = timerDone
	w.mu.Unlock()
	if t.c.closed.Load() {
		return
	}
	t.fn(t.c)
}

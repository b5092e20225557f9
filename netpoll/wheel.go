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

var monoBase = time.Now()

// monoNow is monotonic nanoseconds since the package started.
func monoNow() int64 { return int64(time.Since(monoBase)) }

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
	deadline   int64 // monoNow; a timer never fires before it
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
}

func newWheel(tick time.Duration, dispatch func([]*wheelTimer)) *wheel {
	return &wheel{tick: tick, dispatch: dispatch}
}

func (w *wheel) add(c *conn, d time.Duration, fn func(Conn)) *wheelTimer {
	// +1: the current tick is already partly over, and a timer must not fire early.
	ticks := int((d+w.tick-1)/w.tick) + 1
	t := &wheelTimer{w: w, c: c, fn: fn, deadline: monoNow() + int64(d)}
	w.mu.Lock()
	t.rounds = (ticks - 1) / wheelSlots
	w.link(t, (w.cur+ticks)%wheelSlots)
	w.mu.Unlock()
	return t
}

func (w *wheel) link(t *wheelTimer, slot int) {
	t.slot = slot
	t.prev = nil
	t.next = w.slots[slot]
	if t.next != nil {
		t.next.prev = t
	}
	w.slots[slot] = t
	w.n++
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
func (w *wheel) advance(now int64) {
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
		switch {
		case t.rounds > 0:
			t.rounds--
		case t.deadline > now: // the ticker ran early (jitter): next tick
			w.unlink(t)
			w.link(t, (w.cur+1)%wheelSlots)
		default:
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

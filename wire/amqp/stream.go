package amqp

// Stream queues (x-queue-type=stream): an append-only log per queue read by
// consumers from an offset given with the x-stream-offset consumer argument
// (first, last, next, an offset, a timestamp). Messages are not removed by
// acks; an ack only returns prefetch credit. Each delivery carries the
// x-stream-offset header, as RabbitMQ sets it.

import (
	"errors"
	"fmt"
	"net/url"
	"quartet/engine/exchange"
	"sync"
	"time"

	"quartet/engine/queue"
	"quartet/segment"
)

type streamQueue struct {
	s    *store
	name string
	l    *segment.Log

	mu      sync.Mutex
	cursors map[*streamCursor]struct{}
	bb      segment.BatchBuilder
}

type streamCursor struct {
	sq     *streamQueue
	offset int64
	minTS  int64 // skip records older than this (timestamp offsets; the time index is sparse)
	wake   func()
	buf    []byte
}

func (s *store) openStream(name string) (*streamQueue, error) {
	l, err := s.e.OpenInternalLog("amqp-stream-" + url.PathEscape(name))
	if err != nil {
		return nil, err
	}
	sq := &streamQueue{s: s, name: name, l: l, cursors: map[*streamCursor]struct{}{}}
	l.SetOnCommit(sq.onCommit)
	return sq, nil
}

func (sq *streamQueue) onCommit(int64) {
	sq.mu.Lock()
	ws := make([]func(), 0, len(sq.cursors))
	for c := range sq.cursors {
		if c.wake != nil {
			ws = append(ws, c.wake)
		}
	}
	sq.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// append adds m to the stream; done (may be nil) follows the append. It
// reports whether done will be called.
func (sq *streamQueue) append(m *queue.Message, done func(error)) bool {
	sq.mu.Lock()
	sq.bb.Reset()
	sq.bb.Add(0, []byte(m.RoutingKey), m.Body, []segment.Header{
		{Key: []byte("x-amqp-exchange"), Value: []byte(m.Exchange)},
		{Key: []byte("x-amqp-props"), Value: m.Props},
	})
	var c segment.Completer
	if done != nil {
		c = segment.DoneFunc(done)
	}
	err := sq.l.Append(sq.bb.Bytes(), c)
	sq.mu.Unlock()
	if err != nil {
		if done != nil {
			done(err)
		}
		return done != nil
	}
	return done != nil
}

func (sq *streamQueue) count() int64 {
	start, hw, _ := sq.l.Offsets()
	return hw - start
}

func (sq *streamQueue) remove() {
	sq.mu.Lock()
	clear(sq.cursors)
	sq.mu.Unlock()
	// The log's files stay until the engine closes it; its name is reused
	// by a stream declared again under the same name.
	start, hw, _ := sq.l.Offsets()
	if hw > start {
		sq.l.DeleteBefore(hw)
	}
}

// cursor positions a new reader per the x-stream-offset argument.
func (sq *streamQueue) cursor(spec any) (*streamCursor, error) {
	start, hw, _ := sq.l.Offsets()
	off := hw // default: next
	var minTS int64
	switch v := spec.(type) {
	case nil:
	case string:
		switch v {
		case "first":
			off = start
		case "last":
			off = max(start, hw-1)
		case "next":
			off = hw
		default:
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("unknown offset %q", v)
			}
			minTS = time.Now().Add(-d).UnixMilli()
			o, err := sq.l.OffsetForTime(minTS)
			if err != nil {
				o = hw
			}
			off = o
		}
	case time.Time:
		minTS = v.UnixMilli()
		o, err := sq.l.OffsetForTime(minTS)
		if err != nil {
			o = hw
		}
		off = o
	default:
		n, ok := exchange.AsInt64(v)
		if !ok {
			return nil, fmt.Errorf("bad offset %v", v)
		}
		off = min(max(n, start), hw)
	}
	c := &streamCursor{sq: sq, offset: off, minTS: minTS}
	sq.mu.Lock()
	sq.cursors[c] = struct{}{}
	sq.mu.Unlock()
	return c, nil
}

func (c *streamCursor) close() {
	c.sq.mu.Lock()
	delete(c.sq.cursors, c)
	c.sq.mu.Unlock()
}

var errStop = errors.New("stop")

// drainStream delivers stream records from the cursor (loop only).
func (c *consumer) drainStream() {
	ch := c.ch
	cur := c.stream
	credit, _ := c.credit()
	if credit <= 0 {
		return
	}
	start, hw, _ := cur.sq.l.Offsets()
	if cur.offset < start {
		cur.offset = start
	}
	if cur.offset >= hw {
		return
	}
	var err error
	cur.buf, err = cur.sq.l.ReadBytes(cur.buf[:0], cur.offset, 256<<10)
	if err != nil || len(cur.buf) == 0 {
		return
	}
	conn := ch.c
	out := conn.out[:0]
	sent := 0
	for rest := cur.buf; len(rest) > 0 && sent < credit; {
		h, err := segment.ParseBatchHeader(rest)
		if err != nil || h.Size() > len(rest) {
			break
		}
		segment.ForEachRecord(rest[:h.Size()], func(r *segment.Record) error {
			if r.Offset < cur.offset {
				return nil
			}
			if r.Timestamp < cur.minTS {
				cur.offset = r.Offset + 1
				return nil
			}
			if sent >= credit {
				return errStop
			}
			var ex string
			var props []byte
			for _, hd := range r.Headers {
				switch string(hd.Key) {
				case "x-amqp-exchange":
					ex = string(hd.Value)
				case "x-amqp-props":
					props = hd.Value
				}
			}
			bp, _ := decodeProps(props)
			if bp.Headers == nil {
				bp.Headers = Table{}
			}
			bp.Headers["x-stream-offset"] = r.Offset
			bp.Flags |= FlagHeaders
			m := &queue.Message{Exchange: ex, RoutingKey: string(r.Key), Props: bp.Append(nil),
				Body: append([]byte(nil), r.Value...), TTL: -1}
			ch.nextTag++
			out = appendDeliver(out, ch.id, c.tag, ch.nextTag, false, m.Exchange, m.RoutingKey)
			out = AppendHeaderFrame(out, ch.id, ClassBasic, uint64(len(m.Body)), m.Props)
			out = AppendBodyFrames(out, ch.id, m.Body, conn.frameMax)
			ch.unacked = append(ch.unacked, delivery{tag: ch.nextTag, q: c.q, e: queue.Entry{Msg: m}, cons: c})
			ch.unackedCount++
			ch.unackedBytes += int64(len(m.Body))
			c.unacked++
			cur.offset = r.Offset + 1
			sent++
			return nil
		})
		rest = rest[h.Size():]
	}
	if sent > 0 {
		conn.s.counts.out.Add(uint64(sent))
		conn.nc.Write(out)
		conn.out = out
		c.wake()
	}
}

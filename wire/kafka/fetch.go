package kafka

// Fetch — versions 4–12. Hand-framed: the response header and the
// per-partition headers are encoded here and the record bytes go from the
// segment files by sendfile (Conn.WriteFile); ranges smaller than
// fetchCopyBytesMax are copied into the response instead, which is cheaper
// than a sendfile round for a few KiB.
//
// Long-poll: with fewer than MinBytes available and MaxWaitMs > 0 the
// request parks on the partitions (Partition.Wait) and a wheel timer
// (Conn.AfterFunc); two output slots are reserved so responses stay in
// request order. The first append or the timer completes it.
//
// Fetch sessions (KIP-227) are answered sessionless: session id 0, so clients
// send full fetch requests; an incremental request for a session id is
// answered FETCH_SESSION_ID_NOT_FOUND. There are no transactions, so the last
// stable offset is the high watermark and no aborted transactions are listed.

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

const (
	fetchCopyBytesMax    = 16 << 10
	fetchBytesMaxDefault = 50 << 20 // fetch.max.bytes
	fetchWaitMax         = 5 * time.Minute
)

type fetchPart struct {
	idx      int32
	offset   int64
	maxBytes int32
	code     int16
	hw       int64
	logStart int64
	rng      segment.Range
	p        *engine.Partition
}

type fetchTopic struct {
	name  string
	parts []fetchPart
}

type fetchReq struct {
	s        *Server
	cs       *connState
	version  int16
	corr     int32
	flex     bool
	maxWait  int32
	minBytes int32
	maxBytes int32
	session  int32
	topics   []fetchTopic

	// parked state (loop only)
	done    bool
	timer   netpoll.Timer
	cancels []func() bool
	slots   [2]*netpoll.Slot
}

func parseFetch(rq *request) (*fetchReq, error) {
	v, flex := rq.version, rq.flexible
	r := reader{b: rq.body}
	fr := &fetchReq{version: v, corr: rq.corr, flex: flex}
	r.int32() // replica id
	fr.maxWait = r.int32()
	fr.minBytes = r.int32()
	fr.maxBytes = r.int32()
	r.int8() // isolation level: everything is committed
	if v >= 7 {
		fr.session = r.int32()
		r.int32() // session epoch
	}
	nt := r.arrayLen(flex, 2)
	fr.topics = make([]fetchTopic, 0, max(nt, 0))
	for i := 0; i < nt && r.err == nil; i++ {
		t := fetchTopic{name: string([]byte(r.str(flex)))}
		np := r.arrayLen(flex, 16)
		t.parts = make([]fetchPart, 0, max(np, 0))
		for j := 0; j < np && r.err == nil; j++ {
			fp := fetchPart{idx: r.int32()}
			if v >= 9 {
				r.int32() // current leader epoch
			}
			fp.offset = r.int64()
			if v >= 12 {
				r.int32() // last fetched epoch
			}
			if v >= 5 {
				r.int64() // log start offset (followers only)
			}
			fp.maxBytes = r.int32()
			r.tags(flex)
			t.parts = append(t.parts, fp)
		}
		r.tags(flex)
		fr.topics = append(fr.topics, t)
	}
	if v >= 7 {
		nf := r.arrayLen(flex, 2)
		for i := 0; i < nf && r.err == nil; i++ {
			r.str(flex)
			np := r.arrayLen(flex, 4)
			r.span(4 * max(np, 0))
			r.tags(flex)
		}
	}
	if v >= 11 {
		r.str(flex) // rack id
	}
	r.tags(flex)
	return fr, r.err
}

func (s *Server) handleFetch(cs *connState, rq *request) error {
	fr, err := parseFetch(rq)
	if err != nil {
		return err
	}
	fr.s, fr.cs = s, cs
	if fr.session != 0 {
		// We never hand out sessions.
		cs.buf = fr.appendErrorResponse(cs.buf[:0], errFetchSessionIDNotFound)
		cs.c.Write(cs.buf)
		return nil
	}
	if fr.maxBytes <= 0 {
		fr.maxBytes = fetchBytesMaxDefault
	}
	total := fr.read()
	if total >= int64(fr.minBytes) || fr.maxWait <= 0 || total > 0 && fr.minBytes <= 1 {
		fr.emit(nil)
		return nil
	}
	// Park until data or MaxWaitMs.
	fr.releaseRanges()
	fr.slots[0], fr.slots[1] = cs.c.Reserve(), cs.c.Reserve()
	cs.parked = append(cs.parked, fr)
	for ti := range fr.topics {
		for pi := range fr.topics[ti].parts {
			fp := &fr.topics[ti].parts[pi]
			if fp.p != nil && fp.code == errNone {
				fr.cancels = append(fr.cancels, fp.p.Wait(fp.hw, fr.wake))
			}
		}
	}
	wait := min(time.Duration(fr.maxWait)*time.Millisecond, fetchWaitMax)
	fr.timer = cs.c.AfterFunc(wait, func(netpoll.Conn) { fr.complete() })
	return nil
}

// wake runs on any goroutine when a parked partition has new data.
func (fr *fetchReq) wake() {
	_ = fr.cs.c.Execute(func(netpoll.Conn) { fr.complete() })
}

// unpark stops the timer and waits (loop only); false if already done.
func (fr *fetchReq) unpark() bool {
	if fr.done {
		return false
	}
	fr.done = true
	if fr.timer != nil {
		fr.timer.Stop()
	}
	for _, c := range fr.cancels {
		c()
	}
	fr.cancels = nil
	ps := fr.cs.parked
	for i, x := range ps {
		if x == fr {
			ps[i] = ps[len(ps)-1]
			ps[len(ps)-1] = nil
			fr.cs.parked = ps[:len(ps)-1]
			break
		}
	}
	return true
}

// complete answers a parked fetch (loop only).
func (fr *fetchReq) complete() {
	if !fr.unpark() {
		return
	}
	fr.read()
	fr.emit(&fr.slots)
}

func (fr *fetchReq) releaseRanges() {
	for ti := range fr.topics {
		for pi := range fr.topics[ti].parts {
			fr.topics[ti].parts[pi].rng.Release()
			fr.topics[ti].parts[pi].rng = segment.Range{}
		}
	}
}

// read looks up every partition and takes its file range; it returns the
// record bytes available.
func (fr *fetchReq) read() int64 {
	var total int64
	budget := int64(fr.maxBytes)
	for ti := range fr.topics {
		ft := &fr.topics[ti]
		t, ok := fr.s.e.Topic(ft.name)
		for pi := range ft.parts {
			fp := &ft.parts[pi]
			fp.rng.Release()
			fp.rng = segment.Range{}
			fp.code, fp.hw, fp.logStart, fp.p = errNone, -1, -1, nil
			if !ok {
				fp.code = errUnknownTopicOrPartition
				continue
			}
			p := t.Partition(fp.idx)
			if p == nil {
				fp.code = errUnknownTopicOrPartition
				continue
			}
			fp.p = p
			mb := int64(fp.maxBytes)
			if mb > budget {
				mb = budget
			}
			if mb <= 0 {
				if total > 0 {
					fp.hw, fp.logStart = p.HighWatermark(), p.StartOffset()
					continue
				}
				mb = 1 // KIP-74: the first batch goes even when too large
			}
			rng, err := p.Read(fp.offset, int(mb))
			fp.hw, fp.logStart = p.HighWatermark(), p.StartOffset()
			if err != nil {
				if errors.Is(err, segment.ErrOffsetOutOfRange) {
					fp.code = errOffsetOutOfRange
				} else if errors.Is(err, segment.ErrLogClosed) {
					fp.code = errUnknownTopicOrPartition
				} else {
					fp.code = errKafkaStorageError
				}
				continue
			}
			fp.rng = rng
			total += rng.Len
			budget -= rng.Len
		}
	}
	return total
}

type fetchCut struct {
	at  int // end of the bytes before this range in buf
	rng segment.Range
}

// emit writes the response: directly (slots nil) or into the two reserved
// slots of a parked fetch. Ranges are consumed (released when sent).
func (fr *fetchReq) emit(slots *[2]*netpoll.Slot) {
	cs := fr.cs
	v, flex := fr.version, fr.flex
	buf := cs.buf[:0]
	buf = appendResponseHeader(buf, keyFetch, fr.corr, flex)
	buf = appendInt32(buf, 0) // throttle
	if v >= 7 {
		buf = appendInt16(buf, errNone)
		buf = appendInt32(buf, 0) // session id: sessionless
	}
	var cuts []fetchCut
	cutsMax := 1 << 30
	if slots != nil {
		cutsMax = 1
	}
	var fileBytes int64
	buf = appendArrayLen(buf, len(fr.topics), flex)
	for ti := range fr.topics {
		ft := &fr.topics[ti]
		buf = appendString(buf, ft.name, flex)
		buf = appendArrayLen(buf, len(ft.parts), flex)
		for pi := range ft.parts {
			fp := &ft.parts[pi]
			buf = appendInt32(buf, fp.idx)
			buf = appendInt16(buf, fp.code)
			buf = appendInt64(buf, fp.hw)
			buf = appendInt64(buf, fp.hw) // last stable offset
			if v >= 5 {
				buf = appendInt64(buf, fp.logStart)
			}
			buf = appendArrayLen(buf, -1, flex) // aborted transactions: null
			if v >= 11 {
				buf = appendInt32(buf, -1) // preferred read replica
			}
			n := fp.rng.Len
			buf = appendBytesLen(buf, int(n), flex)
			if n > 0 {
				// Offsets in a partition are dense: the range's records at or
				// after the fetch offset, without reading them.
				records := uint64(max(fp.rng.EndOffset-max(fp.offset, fp.rng.FirstOffset), 0))
				if n <= fetchCopyBytesMax || len(cuts) >= cutsMax {
					l := len(buf)
					buf = slices.Grow(buf, int(n))[:l+int(n)]
					if _, err := fp.rng.File.ReadAt(buf[l:], fp.rng.Pos); err != nil {
						// Cannot happen for a held range; keep the frame well-formed.
						clear(buf[l:])
						fr.s.log.Error("kafka fetch read failed", "topic", ft.name, "partition", fp.idx, "err", err)
					} else {
						fr.s.msgsOut.Add(records)
					}
					fp.rng.Release()
				} else {
					fr.s.msgsOut.Add(records)
					cuts = append(cuts, fetchCut{at: len(buf), rng: fp.rng})
					fileBytes += n
				}
				fp.rng = segment.Range{}
			}
			buf = appendTags(buf, flex)
		}
		buf = appendTags(buf, flex)
	}
	buf = appendTags(buf, flex)
	binary.BigEndian.PutUint32(buf, uint32(int64(len(buf)-4)+fileBytes))
	c := cs.c
	prev := 0
	if slots == nil {
		for _, cut := range cuts {
			rng := cut.rng
			c.WriteFile(buf[prev:cut.at], rng.File, rng.Pos, rng.Len, func(error) { rng.Release() })
			prev = cut.at
		}
		c.Write(buf[prev:])
	} else {
		if len(cuts) == 1 {
			rng := cuts[0].rng
			slots[0].FillFile(buf[:cuts[0].at], rng.File, rng.Pos, rng.Len, func(error) { rng.Release() })
			prev = cuts[0].at
		} else {
			slots[0].Fill(nil)
		}
		slots[1].Fill(buf[prev:])
	}
	if cap(buf) <= 1<<20 {
		cs.buf = buf
	}
}

func (fr *fetchReq) appendErrorResponse(dst []byte, code int16) []byte {
	dst = appendResponseHeader(dst, keyFetch, fr.corr, fr.flex)
	dst = appendInt32(dst, 0)
	if fr.version >= 7 {
		dst = appendInt16(dst, code)
		dst = appendInt32(dst, 0)
	}
	dst = appendArrayLen(dst, 0, fr.flex)
	dst = appendTags(dst, fr.flex)
	finishFrame(dst, 0)
	return dst
}

// dropParked cancels a closed connection's parked fetches.
func (cs *connState) dropParked() {
	for len(cs.parked) > 0 {
		fr := cs.parked[len(cs.parked)-1]
		fr.unpark()
		fr.releaseRanges()
	}
}

// Package netpoll is Quartet's network core: every protocol listener runs on
// it, behind one Conn/Handler contract (api.go) that does not depend on the
// transport.
//
// Transports:
//   - gnet v2 event loops for plain TCP: one per core but one by default
//     (Config.Loops; see README.md for why). One engine serves every
//     plain-TCP address — measured 1.13× one engine per listener, which
//     Config.EnginePerListener still offers. TCP_NODELAY is on; socket
//     buffer sizes are set per accepted socket.
//   - std-net (a reader and a writer goroutine per connection) for TLS
//     (crypto/tls) and WebSocket (github.com/coder/websocket, binary
//     messages; their bytes are one stream for the Framer). The connection's
//     mutex plays the event loop, so handlers see the same guarantees.
//
// Data path (gnet):
//
//	socket ─read─▶ loop read buffer ─Peek─▶ Framer ─▶ Handler.OnFrame(frame aliases the buffer)
//	                   (partial frame kept by gnet)        │ Discard(n) after the frames
//	                                                        │
//	       ┌──────────── c.Write(b) (copied) ◀──────────────┤
//	       │             c.Reserve() → *Slot ◀──────────────┤  (engine completes later:
//	       │             c.WriteFile(hdr,f,off,n) ◀─────────┘   c.Execute(func(c){ slot.Fill(b) }))
//	       ▼
//	  per-conn ordered queue: [wbuf][slot][bytes][file range][slot]...
//	       │ end of every loop entry: flush everything ready, in order
//	       │ (after a read on a busy loop: deferred to a loop task, gnet_batch.go)
//	       ▼
//	  one io_uring_enter: a SEND per dirty connection (batched), or gnet Writev
//	       ─▶ socket        (what the socket refuses goes to gnet's outbound
//	                         buffer; later output queues behind it)
//	  file range ≥ CopyThresholdBytes (shorter ones: pread + write, like any output):
//	    once gnet's outbound is empty, the header (and the bytes before it) with
//	    sendmsg(MSG_MORE), so the range's first segment carries it; then
//	    sendfile(sock, segment fd, &off, n) until done or EAGAIN ──EAGAIN──▶ the range stays
//	    at the head of the queue (later output waits behind it) and a goroutine parks on
//	    the socket's writability in the Go runtime poller (dup of the fd), then
//	    Execute brings the loop back to continue from the saved offset.
//
// On std-net the writer goroutine writes the queue in order: bytes with
// writev (one buffer per TLS record / WebSocket message), file ranges with
// io.Copy from an io.SectionReader.
//
// Limits: FrameBytesMax per protocol; ConnsMax global and per listener; an
// outbound high-water mark per connection above which its reads pause (the
// check runs after every frame); a global memory high-water mark (bytes all
// connections buffer) that pauses publishing connections until the total is
// below the low-water mark. Reads are paused on gnet by taking EPOLLIN off
// the socket in the loop's epoll set (gnet has no API for it). Every pause
// and every drop reported with CountDrop is counted in the listener's stats.
//
// Timers: a hashed timing wheel per loop (one shared by std-net
// connections), advanced by one ticker goroutine per Server; expired timers
// run on their loop in one batch. No goroutine or time.Timer per timer.
//
// Loop entries (OnTraffic, Execute, timers) end by flushing the output of
// every connection they wrote to, so many responses of one connection leave
// in one writev. On a busy loop the flush after a read is deferred to a
// task gnet runs after the next epoll_wait's callbacks (at most 64
// connections), and the output of every dirty connection is sent with one
// io_uring_enter instead of one write per connection (Config.NoBatchedWrites
// turns it off; without io_uring it is off): a request/response then costs
// one read and ~0.05 other system calls instead of one read and one write.
// A busy loop calls runtime.Gosched every 2 ms so that the Go scheduler's
// sysmon neither preempts it nor takes its P (Config.NoLoopYield).
package netpoll

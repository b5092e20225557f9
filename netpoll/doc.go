// Package netpoll is Quartet's network core: every protocol listener runs on
// it, behind one Conn/Handler contract (api.go) that does not depend on the
// transport.
//
// Transports:
//   - gnet v2 event loops (one per core) for plain TCP. One engine serves
//     every plain-TCP address (Config.EnginePerListener runs one per
//     listener instead). TCP_NODELAY is on; socket buffer sizes are set per
//     accepted socket.
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
//	       ▼
//	  gnet Writev ─▶ socket         (what the socket refuses waits in gnet's
//	  file range:                    outbound buffer; later output queues behind it)
//	    gnet outbound empty? ─yes─▶ write header, sendfile(fd, &off, n) ─EAGAIN─▶ pread rest
//	                         ─no──▶ pread range into gnet's outbound (copy)      into outbound
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
// every connection they wrote to, so many responses leave in one writev.
package netpoll

package amqp

// connection.blocked / connection.unblocked (RabbitMQ extension): while a
// resource alarm is on (low disk under Config.DataDir, or SetBlocked from the
// appliance), clients that announced the connection.blocked capability are
// told, and connections that publish stop being read until the alarm clears
// (consumers keep draining).

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"quartet/netpoll"
)

type alarms struct {
	mu      sync.Mutex
	conns   map[*connection]struct{}
	reasons map[string]bool
}

func (a *alarms) add(c *connection) {
	a.mu.Lock()
	if a.conns == nil {
		a.conns = map[*connection]struct{}{}
	}
	a.conns[c] = struct{}{}
	reason := a.reasonLocked()
	a.mu.Unlock()
	if reason != "" {
		c.blockReason = reason
	}
}

func (a *alarms) remove(c *connection) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

func (a *alarms) reasonLocked() string {
	for r, on := range a.reasons {
		if on {
			return r
		}
	}
	return ""
}

// SetBlocked turns the resource alarm named reason on or off. Publishing
// connections pause while any alarm is on.
func (s *Server) SetBlocked(reason string, on bool) {
	a := &s.alarms
	a.mu.Lock()
	if a.reasons == nil {
		a.reasons = map[string]bool{}
	}
	if a.reasons[reason] == on {
		a.mu.Unlock()
		return
	}
	a.reasons[reason] = on
	now := a.reasonLocked()
	conns := make([]*connection, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	s.log.Warn("resource alarm", "reason", reason, "on", on)
	for _, c := range conns {
		c.nc.Execute(func(netpoll.Conn) { c.setBlocked(now) })
	}
}

func (c *connection) setBlocked(reason string) {
	if c.state == stateClosed {
		return
	}
	was := c.blockReason
	c.blockReason = reason
	switch {
	case was == "" && reason != "":
		if c.wantsBlocked() {
			c.send(0, &ConnectionBlocked{Reason: reason})
		}
		if c.published {
			c.pause()
		}
	case was != "" && reason == "":
		if c.wantsBlocked() {
			c.send(0, &ConnectionUnblocked{})
		}
		if c.paused {
			c.paused = false
			if !c.flowPaused {
				c.nc.ResumeReads()
			}
		}
	}
}

func (c *connection) pause() {
	if !c.paused {
		c.paused = true
		if !c.flowPaused {
			c.nc.PauseReads()
		}
	}
}

// flowPause stops reading from this publisher until vq's consumers catch up.
func (c *connection) flowPause(vq *vqueue) {
	if c.flowPaused {
		return
	}
	c.flowPaused = true
	c.flowPauses++
	if !c.paused {
		c.nc.PauseReads()
	}
	vq.addFlowWaiter(c)
	c.flowTimer = c.nc.AfterFunc(flowPauseMax, func(netpoll.Conn) { c.flowResume() })
}

func (c *connection) flowResume() {
	if !c.flowPaused {
		return
	}
	c.flowPaused = false
	if c.flowTimer != nil {
		c.flowTimer.Stop()
		c.flowTimer = nil
	}
	if !c.paused && c.state != stateClosed {
		c.nc.ResumeReads()
	}
}

func (c *connection) wantsBlocked() bool {
	v, _ := c.caps["connection.blocked"].(bool)
	return v
}

// watchDisk raises the "low disk" alarm while free space under dir is below min.
func (s *Server) watchDisk(dir string, min int64, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize)
			s.SetBlocked("low disk space", free < min)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

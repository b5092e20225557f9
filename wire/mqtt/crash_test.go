package mqtt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

// crashChildEnv names the data directory of a broker run as a child process
// by TestMain (the test binary re-executed), so a test can SIGKILL it.
const crashChildEnv = "QUARTET_MQTT_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

// crashChild runs engine + MQTT server + netpoll over dir (flush=sync, as
// the appliance's default), writes its address to dir/addr and serves until
// it is killed.
func crashChild(dir string) int {
	lg := testLogger()
	e, err := engine.Open(engine.Config{DataDir: dir, Flush: segment.FlushSync, IO: segment.IOSync}, lg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		return 1
	}
	srv, err := New(e, Config{SysInterval: -1}, lg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqtt:", err)
		return 1
	}
	ns, err := netpoll.NewServer(netpoll.Config{Loops: 2, Logger: lg}, []netpoll.Listener{{Addr: "127.0.0.1:0", Protocol: srv.Protocol()}})
	if err == nil {
		err = ns.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netpoll:", err)
		return 1
	}
	addr := filepath.Join(dir, "addr")
	if err := os.WriteFile(addr+".tmp", []byte(ns.ListenerAddrs()[0].String()), 0o644); err != nil {
		return 1
	}
	if err := os.Rename(addr+".tmp", addr); err != nil {
		return 1
	}
	select {}
}

// childBroker is a broker in a child process.
type childBroker struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	addr string
}

// spawnBroker starts a child broker over dir and waits for its address.
func spawnBroker(t *testing.T, dir string) *childBroker {
	t.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cb := &childBroker{cmd: cmd, out: out}
	t.Cleanup(cb.kill)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "addr")); err == nil {
			cb.addr = string(b)
			return cb
		}
		if time.Now().After(deadline) {
			cb.kill()
			t.Fatalf("child broker did not start: %s", out)
		}
	}
}

// kill sends SIGKILL and reaps the child.
func (cb *childBroker) kill() {
	if cb.cmd.Process == nil || cb.cmd.ProcessState != nil {
		return
	}
	_ = cb.cmd.Process.Kill()
	_ = cb.cmd.Wait()
}

// recorder collects the payloads a subscriber is given.
type recorder struct {
	mu  sync.Mutex
	got map[string]int
	dup map[string]bool // delivered with DUP
	n   int
}

func newRecorder() *recorder { return &recorder{got: map[string]int{}, dup: map[string]bool{}} }

func (r *recorder) handler(_ paho3.Client, m paho3.Message) {
	p := string(m.Payload())
	r.mu.Lock()
	r.got[p]++
	r.dup[p] = r.dup[p] || m.Duplicate()
	r.n++
	r.mu.Unlock()
}

// waitFor waits until every payload in want has been seen (or fails after
// a generous liveness bound, listing what is missing).
func (r *recorder) waitFor(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var missing []string
		r.mu.Lock()
		for _, p := range want {
			if r.got[p] == 0 {
				missing = append(missing, p)
			}
		}
		r.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never delivered, e.g. %v", len(missing), len(want),
				missing[:min(5, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// QoS 1 and 2 messages routed to a connected persistent-session subscriber
// that has not acknowledged them (some sent and unacknowledged, the rest
// queued behind its inflight window) survive a SIGKILL of the broker:
// the publisher got PUBACK/PUBCOMP for every one of them, so after a
// restart on the same data directory the subscriber, reconnecting with the
// same client id, receives every one — QoS 2 exactly once.
func TestLiveQueueSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	b := spawnBroker(t, dir)

	// a live persistent subscriber that takes messages but never acknowledges
	pre := newRecorder()
	sub := connect3(t, b.addr, "crash-sub", false, nil, func(o *paho3.ClientOptions) {
		o.SetAutoAckDisabled(true)
		o.SetDefaultPublishHandler(pre.handler)
	})
	sub3(t, sub, "k/#", 2)

	pub := connect3(t, b.addr, "crash-pub", true, nil, nil)
	const n = 400 // per QoS; more than the inflight window (256) in all
	var want, want2 []string
	toks := make([]paho3.Token, 0, 2*n)
	for i := range n {
		p1, p2 := fmt.Sprintf("q1-%d", i), fmt.Sprintf("q2-%d", i)
		toks = append(toks, pub.Publish("k/1", 1, false, p1), pub.Publish("k/2", 2, false, p2))
		want = append(want, p1, p2)
		want2 = append(want2, p2)
	}
	for _, tok := range toks {
		wait(t, tok) // every message acknowledged to the publisher (PUBACK, PUBCOMP)
	}
	// some reached the subscriber before the crash (never acknowledged)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pre.mu.Lock()
		got := pre.n
		pre.mu.Unlock()
		if got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscriber got nothing before the crash")
		}
	}

	b.kill() // SIGKILL
	sub.Disconnect(0)
	pub.Disconnect(0)

	b2 := spawnBroker(t, dir)
	post := newRecorder()
	sub2 := connect3(t, b2.addr, "crash-sub", false, nil, func(o *paho3.ClientOptions) {
		o.SetDefaultPublishHandler(post.handler)
	})
	post.waitFor(t, want)
	// a QoS 2 marker published now is queued behind everything the restart
	// restored: once it arrives, any second copy would have arrived too
	pub2 := connect3(t, b2.addr, "crash-pub", true, nil, nil)
	wait(t, pub2.Publish("k/end", 2, false, "end"))
	post.waitFor(t, []string{"end"})
	post.mu.Lock()
	defer post.mu.Unlock()
	var dups []string
	for _, p := range want2 {
		if post.got[p] != 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", p, post.got[p]))
		}
	}
	if len(dups) > 0 {
		t.Fatalf("QoS 2 delivered more than once after the restart: %s", strings.Join(dups[:min(10, len(dups))], " "))
	}
	// a QoS 2 PUBLISH the subscriber saw before the crash is resent as the
	// same delivery (DUP, same packet id: its id was stored before the
	// PUBLISH left), so a receiver holding the id does not deliver it twice
	var notDup []string
	resent := 0
	pre.mu.Lock()
	defer pre.mu.Unlock()
	for _, p := range want2 {
		if pre.got[p] > 0 {
			resent++
			if !post.dup[p] {
				notDup = append(notDup, p)
			}
		}
	}
	if len(notDup) > 0 {
		t.Fatalf("%d of %d QoS 2 deliveries seen before the crash were resent as new ones (no DUP), e.g. %v",
			len(notDup), resent, notDup[:min(5, len(notDup))])
	}
	t.Logf("before the crash the subscriber held %d unacknowledged deliveries (%d QoS 2); after it got %d (%d distinct)",
		pre.n, resent, post.n, len(post.got))
	sub2.Disconnect(100)
}

// liveCounts reads the live log of b: batch records without a release
// record, their message bodies and (session, message) pairs.
func liveCounts(t *testing.T, b *broker) (records, msgs, pairs int) {
	t.Helper()
	released := map[int64]bool{}
	err := b.srv.live.scan(func(_ int64, key, v []byte) error {
		if len(key) == 1 {
			released[int64(binary.BigEndian.Uint64(v))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.srv.live.scan(func(off int64, key, v []byte) error {
		if len(key) != 0 || released[off] {
			return nil
		}
		records++
		for len(v) > 0 {
			n := int(binary.BigEndian.Uint32(v))
			v = v[4+n:]
			np := int(binary.BigEndian.Uint16(v))
			v = v[2:]
			msgs++
			for range np {
				v = v[2+int(binary.BigEndian.Uint16(v))+14:]
				pairs++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// QoS 1 messages routed to two connected persistent sessions are stored
// once each (one body, two pairs); after a crash each session gets what it
// had not acknowledged, and the batches are released once everything in
// them is acknowledged. An acknowledgement is not written while another session
// still holds the batch, so lb1, which had acknowledged everything, gets
// the messages again after the crash (at least once, as QoS 1 allows).
func TestLiveBatchStoredOnce(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, Config{})
	s1 := dialSub(t, b.addr, "lb1", false)
	s1.subscribe(1, "lb/#", 1)
	s2 := dialSub(t, b.addr, "lb2", false)
	s2.subscribe(1, "lb/#", 1)
	pub := connect3(t, b.addr, "lbpub", true, nil, nil)
	const n = 10
	for i := range n {
		wait(t, pub.Publish("lb/x", 1, false, fmt.Sprint("m", i))) // PUBACK: stored
	}
	if _, msgs, pairs := liveCounts(t, b); msgs != n || pairs != 2*n {
		t.Fatalf("stored %d message bodies and %d pairs, want %d and %d", msgs, pairs, n, 2*n)
	}
	for range n { // lb1 acknowledges everything, lb2 nothing
		p, _ := s1.next()
		s1.ack(PUBACK, p.PacketID)
		s2.next()
	}
	s1.send([]byte{PINGREQ << 4, 0})
	s1.expect(PINGRESP)              // the acks were handled
	b.srv.persist.closed.Store(true) // a crash: nothing more is written
	b.stop()

	b2 := startBroker(t, dir, Config{})
	s1 = dialSub(t, b2.addr, "lb1", true)
	s2 = dialSub(t, b2.addr, "lb2", true)
	for i := range n {
		for _, s := range []rawSub{s2, s1} {
			p, _ := s.next()
			if p == nil || string(p.Payload) != fmt.Sprint("m", i) {
				t.Fatalf("after the crash: got %+v, want m%d", p, i)
			}
			s.ack(PUBACK, p.PacketID)
		}
	}
	s1.quiet(200 * time.Millisecond)
	for _, s := range []rawSub{s1, s2} {
		s.send([]byte{PINGREQ << 4, 0})
		s.expect(PINGRESP)
	}
	// the acknowledgements were handled: every batch gets its release record
	waitLiveReleased(t, b2)
}

// waitLiveReleased waits until every batch in b's live log has its
// release record.
func waitLiveReleased(t *testing.T, b *broker) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		records, _, _ := liveCounts(t, b)
		if records == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d live batches not released after every message was acknowledged", records)
		}
	}
}

// The live log is trimmed as batches are released, and a connected
// subscriber that never acknowledges does not pin it: past
// LiveLogPinnedBytesMax its messages move to per-message records. After a
// crash that subscriber still gets every message, once.
func TestLiveLogTrimmedPastStalledSubscriber(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{LiveLogSegmentBytes: 64 << 10, LiveLogPinnedBytesMax: 256 << 10, QueueHighMessages: 1 << 20}
	b := startBroker(t, dir, cfg)
	stalled := dialSub(t, b.addr, "pin-stalled", false) // never acknowledges
	stalled.subscribe(1, "pin/#", 1)
	fast := connect3(t, b.addr, "pin-fast", false, nil, nil)
	sub3(t, fast, "pin/#", 1)
	pub := connect3(t, b.addr, "pin-pub", true, nil, nil)
	const n = 2000
	payload := strings.Repeat("x", 1000)
	toks := make([]paho3.Token, 0, n)
	for i := range n {
		toks = append(toks, pub.Publish("pin/x", 1, false, fmt.Sprintf("%04d%s", i, payload)))
	}
	for _, tok := range toks {
		wait(t, tok)
	}
	// ~2 MB went through the live log; it shrinks to well under that
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if bytes := b.srv.live.l.Stats().Bytes; bytes <= 1<<20 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("live log still %d bytes", bytes)
		}
	}
	b.srv.persist.closed.Store(true) // a crash
	b.stop()

	b2 := startBroker(t, dir, cfg)
	s2 := dialSub(t, b2.addr, "pin-stalled", true)
	got := map[string]int{}
	for range n {
		p, _ := s2.next()
		if p == nil {
			t.Fatal("PUBREL for a QoS 1 message")
		}
		got[string(p.Payload[:4])]++
		s2.ack(PUBACK, p.PacketID)
	}
	for i := range n {
		if k := fmt.Sprintf("%04d", i); got[k] != 1 {
			t.Fatalf("message %s delivered %d times after the crash", k, got[k])
		}
	}
	s2.quiet(200 * time.Millisecond)
}

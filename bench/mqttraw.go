package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The lean MQTT publisher (--pub-mode raw): pre-encoded PUBLISH packets
// written through a 64 KiB buffer, only the payload's timestamp, sequence and
// the packet id patched per message; QoS 1 with --inflight outstanding and
// PUBACKs read by a second goroutine. It sends exactly the bytes paho would
// (3.1.1, clean session), but batches them into few writes — as a
// high-volume device gateway does — so on this 2-core machine the generator
// costs less than the broker. Subscribers stay paho.

// mqttRemLen appends an MQTT variable-length integer.
func mqttRemLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// mqttPublishTemplate encodes one PUBLISH and returns it with the offsets of
// the packet id (-1 for QoS 0) and of the payload.
func mqttPublishTemplate(topic string, qos byte, payload []byte) (pkt []byte, pidOff, payloadOff int) {
	var v []byte
	v = binary.BigEndian.AppendUint16(v, uint16(len(topic)))
	v = append(v, topic...)
	pidOff = -1
	if qos > 0 {
		pidOff = len(v)
		v = append(v, 0, 1)
	}
	payloadOff = len(v)
	v = append(v, payload...)
	pkt = append([]byte{0x30 | qos<<1}, mqttRemLen(nil, len(v))...)
	hdr := len(pkt)
	pkt = append(pkt, v...)
	if pidOff >= 0 {
		pidOff += hdr
	}
	return pkt, pidOff, payloadOff + hdr
}

func mqttRawConnect(target, id string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(mqttConnectPacket(id)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(br, ack[:]); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		conn.Close()
		return nil, nil, fmt.Errorf("connack refused: % x", ack)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, br, nil
}

func mqttRawPublish(ctx context.Context, c *Config, pe *pubEnv) error {
	type rc struct {
		conn net.Conn
		br   *bufio.Reader
	}
	conns := make([]rc, c.Producers)
	for i := range conns {
		conn, br, err := mqttRawConnect(c.Target, fmt.Sprintf("qb-%s-p%d", c.RunID, i))
		if err != nil {
			return fmt.Errorf("mqtt connect %d: %w", i, err)
		}
		defer conn.Close()
		conns[i] = rc{conn, br}
	}
	if err := pe.waitStart(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i, k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mqttRawPublisher(ctx, c, pe, i, k.conn, k.br); err != nil {
				pe.errs.add(fmt.Errorf("publisher %d: %w", i, err))
			}
		}()
	}
	wg.Wait()
	return nil
}

func mqttRawPublisher(ctx context.Context, c *Config, pe *pubEnv, i int, conn net.Conn, br *bufio.Reader) error {
	qos := byte(c.QoS)
	topic := fmt.Sprintf("%s/%d", c.Prefix, i%c.Topics)
	pkt, pidOff, plOff := mqttPublishTemplate(topic, qos, newPayload(c.Size))
	bw := bufio.NewWriterSize(conn, 64<<10)
	var slots chan struct{}
	var sendTs []int64
	readErr := make(chan error, 1)
	if qos == 1 {
		slots = make(chan struct{}, c.Inflight)
		sendTs = make([]int64, 65536)
		rec := pe.acks.add()
		go func() {
			var h [4]byte
			for {
				if _, err := io.ReadFull(br, h[:2]); err != nil {
					readErr <- err
					return
				}
				n := int(h[1])
				if h[1]&0x80 != 0 || n > 2 {
					readErr <- fmt.Errorf("unexpected packet % x", h[:2])
					return
				}
				if _, err := io.ReadFull(br, h[2:2+n]); err != nil {
					readErr <- err
					return
				}
				if h[0]>>4 != 4 || n != 2 { // PUBACK
					continue
				}
				pid := binary.BigEndian.Uint16(h[2:4])
				pe.acked(rec, sendTs[pid], time.Now())
				<-slots
			}
		}()
	}
	pc := pe.pacer(i)
	var seq uint64
	var pid uint16
	for ctx.Err() == nil {
		if !pc.due() && bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		ts, ok := pc.next()
		if !ok {
			break
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			default:
				if err := bw.Flush(); err != nil {
					return err
				}
				select {
				case slots <- struct{}{}:
				case err := <-readErr:
					return fmt.Errorf("reading PUBACKs: %w", err)
				}
			}
			pid++
			if pid == 0 {
				pid = 1
			}
			binary.BigEndian.PutUint16(pkt[pidOff:], pid)
			sendTs[pid] = ts
		}
		fillPayload(pkt[plOff:], ts, uint64(i), seq)
		seq++
		if _, err := bw.Write(pkt); err != nil {
			return err
		}
		pe.sentOne(ts)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if slots != nil {
		deadline := time.After(10 * time.Second)
		for range cap(slots) {
			select {
			case slots <- struct{}{}:
			case <-deadline:
				return fmt.Errorf("PUBACKs outstanding after 10s")
			case err := <-readErr:
				return fmt.Errorf("reading PUBACKs: %w", err)
			}
		}
	}
	_, _ = conn.Write([]byte{0xe0, 0}) // DISCONNECT
	return nil
}

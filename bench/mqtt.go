package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttDriver drives MQTT 3.1.1 with paho.mqtt.golang. Publisher i publishes to
// PREFIX/(i mod topics); every subscriber subscribes FILTER (default PREFIX/#),
// so each publish is expected once per subscriber.
type mqttDriver struct{}

func (mqttDriver) setup(context.Context, *Config) error { return nil }
func (mqttDriver) cleanup(context.Context, *Config)     {}
func (mqttDriver) expected(c *Config, sent int64) int64 { return sent * int64(c.Consumers) }

// bufConn gives paho a 64 KiB buffered reader: paho reads each packet with
// 2-3 small reads, which costs the generator more than the broker
// (BENCHMARKING.md); buffering is applied to every broker alike.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func dialBuffered(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", uri.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func mqttOptions(c *Config, id string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker("tcp://" + c.Target).
		SetClientID(id).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetPingTimeout(30 * time.Second).
		SetConnectTimeout(15 * time.Second).
		SetOrderMatters(true).
		SetCustomOpenConnectionFn(dialBuffered)
}

// connectAll connects n clients with at most 64 handshakes in flight.
func connectAll(ctx context.Context, n int, mk func(i int) mqtt.Client) ([]mqtt.Client, error) {
	clients := make([]mqtt.Client, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cl := mk(i)
			t := cl.Connect()
			if !t.WaitTimeout(20*time.Second) || t.Error() != nil {
				errs <- fmt.Errorf("mqtt connect %d: %v", i, orTimeout(t.Error()))
				return
			}
			clients[i] = cl
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, cl := range clients {
			if cl != nil {
				cl.Disconnect(0)
			}
		}
		return nil, err
	}
	return clients, ctx.Err()
}

func orTimeout(err error) error {
	if err == nil {
		return fmt.Errorf("timeout")
	}
	return err
}

func (mqttDriver) publish(ctx context.Context, c *Config, pe *pubEnv) error {
	if c.PubMode == "raw" {
		return mqttRawPublish(ctx, c, pe)
	}
	clients, err := connectAll(ctx, c.Producers, func(i int) mqtt.Client {
		return mqtt.NewClient(mqttOptions(c, fmt.Sprintf("qb-%s-p%d", c.RunID, i)).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) { pe.errs.add(fmt.Errorf("connection lost: %w", err)) }))
	})
	if err != nil {
		return err
	}
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(100)
		}
	}()
	if err := pe.waitStart(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mqttPublisher(ctx, c, pe, i, cl)
		}()
	}
	wg.Wait()
	return nil
}

type mqttPending struct {
	tok mqtt.Token
	ts  int64
}

// mqttPublisher publishes with at most --inflight tokens outstanding; a
// second goroutine waits for them in order and records the ack latency.
func mqttPublisher(ctx context.Context, c *Config, pe *pubEnv, i int, cl mqtt.Client) {
	topic := fmt.Sprintf("%s/%d", c.Prefix, i%c.Topics)
	qos := byte(c.QoS)
	window := c.Inflight
	bufs := make([][]byte, window+1)
	for k := range bufs {
		bufs[k] = newPayload(c.Size)
	}
	pending := make(chan mqttPending, window-1+1)
	rec := pe.acks.add()
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for p := range pending {
			<-p.tok.Done()
			if err := p.tok.Error(); err != nil {
				pe.errs.add(err)
				continue
			}
			if qos > 0 {
				pe.acked(rec, p.ts, time.Now())
			}
		}
	}()
	pc := pe.pacer(i)
	var seq uint64
	for ctx.Err() == nil {
		ts, ok := pc.next()
		if !ok {
			break
		}
		if !cl.IsConnectionOpen() {
			pe.errs.add(fmt.Errorf("publisher %d: not connected", i))
			break
		}
		buf := bufs[seq%uint64(len(bufs))]
		fillPayload(buf, ts, uint64(i), seq)
		seq++
		tok := cl.Publish(topic, qos, false, buf)
		pe.sentOne(ts)
		pending <- mqttPending{tok: tok, ts: ts}
	}
	close(pending)
	select {
	case <-ackDone:
	case <-time.After(10 * time.Second):
		pe.errs.add(fmt.Errorf("publisher %d: acknowledgements outstanding after 10s", i))
	}
}

// mqttSubPersistent: with QB_MQTT_SUB_SESSION=persistent in the
// environment, subscribers connect with clean session false (a persistent
// session, whose QoS 1/2 messages a broker may have to store); on leaving
// they unsubscribe and then drop the session with a clean connect.
func mqttSubPersistent() bool { return os.Getenv("QB_MQTT_SUB_SESSION") == "persistent" }

func (mqttDriver) subscribe(ctx context.Context, c *Config, se *subEnv) error {
	stats := make([]*consumerStat, c.Consumers)
	for i := range stats {
		stats[i] = se.consumer()
	}
	persistent := mqttSubPersistent()
	subID := func(i int) string { return fmt.Sprintf("qb-%s-s%d", c.RunID, i) }
	clients, err := connectAll(ctx, c.Consumers, func(i int) mqtt.Client {
		return mqtt.NewClient(mqttOptions(c, subID(i)).SetCleanSession(!persistent).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) { se.errs.add(fmt.Errorf("connection lost: %w", err)) }))
	})
	if err != nil {
		return err
	}
	defer func() {
		for i, cl := range clients {
			if persistent {
				cl.Unsubscribe(c.Filter).WaitTimeout(5 * time.Second)
			}
			cl.Disconnect(100)
			if persistent {
				drop := mqtt.NewClient(mqttOptions(c, subID(i)))
				if t := drop.Connect(); t.WaitTimeout(5*time.Second) && t.Error() == nil {
					drop.Disconnect(100)
				}
			}
		}
	}()
	for i, cl := range clients {
		cs := stats[i]
		t := cl.Subscribe(c.Filter, byte(c.QoS), func(_ mqtt.Client, m mqtt.Message) { cs.got(m.Payload()) })
		if !t.WaitTimeout(20*time.Second) || t.Error() != nil {
			return fmt.Errorf("mqtt subscribe %q: %v", c.Filter, orTimeout(t.Error()))
		}
		if st, ok := t.(*mqtt.SubscribeToken); ok {
			for _, q := range st.Result() {
				if q == 0x80 {
					return fmt.Errorf("mqtt subscribe %q: refused (0x80)", c.Filter)
				}
			}
		}
	}
	se.ready()
	<-ctx.Done()
	return nil
}

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	wamqp "quartet/wire/amqp"
	wkafka "quartet/wire/kafka"
	wmqtt "quartet/wire/mqtt"
	wrocketmq "quartet/wire/rocketmq"
)

// messageCounter is the method every wire server has for
// quartet_messages_in_total / quartet_messages_out_total.
type messageCounter interface {
	MessageCounts() (in, out uint64)
}

// counted reports which protocol servers have MessageCounts.
func counted() map[string]bool {
	has := func(v any) bool { _, ok := v.(messageCounter); return ok }
	return map[string]bool{
		"kafka":    has((*wkafka.Server)(nil)),
		"amqp":     has((*wamqp.Server)(nil)),
		"mqtt":     has((*wmqtt.Server)(nil)),
		"rocketmq": has((*wrocketmq.Server)(nil)),
	}
}

// TestMessageCounts publishes and consumes a known number of messages
// through each protocol with its real client library and checks that
// quartet_messages_in_total and quartet_messages_out_total moved by exactly
// that much: every delivered copy counts (two AMQP queues behind a fanout
// exchange, two MQTT subscribers).
func TestMessageCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and four client libraries")
	}
	has := counted()
	for _, proto := range []string{"kafka", "amqp", "mqtt", "rocketmq"} {
		if !has[proto] {
			t.Errorf("wire/%s: Server has no MessageCounts() (in, out uint64)", proto)
		}
	}
	d := startDaemon(t, nil)
	before := scrape(t, d.addrs["http"])
	run := fmt.Sprint(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type flow struct {
		in, out float64
		fn      func(t *testing.T)
	}
	flows := map[string]flow{
		// 10 records one by one, 5 in one batch and 20 of 64 KiB one by one;
		// one consumer reads all 35.
		"kafka": {35, 35, func(t *testing.T) {
			topic := "count-kafka-" + run
			cl, err := kgo.NewClient(kgo.SeedBrokers(d.addrs["kafka"]), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for i := range 10 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			batch := make([]*kgo.Record, 5)
			for i := range batch {
				batch[i] = &kgo.Record{Value: []byte{byte(i)}}
			}
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// 64 KiB records: served by sendfile, and more than a fetch's
			// 1 MiB per partition, so a fetch ends inside a batch.
			big := make([]byte, 64<<10)
			for i := range 20 {
				big[0] = byte(i)
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			cc, err := kgo.NewClient(kgo.SeedBrokers(d.addrs["kafka"]), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			for got := 0; got < 35; {
				fs := cc.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("fetched %d of 35: %v", got, err)
				}
				fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
				got += fs.NumRecords()
			}
		}},
		// 10 confirmed publishes to a fanout exchange with two queues; 5
		// basic.get from one, a consumer takes the other 15 copies.
		"amqp": {10, 20, func(t *testing.T) {
			conn, err := amqp.Dial("amqp://guest:guest@" + d.addrs["amqp"] + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			ex, qa, qb := "count-fx-"+run, "count-a-"+run, "count-b-"+run
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(ch.ExchangeDeclare(ex, "fanout", false, true, false, false, nil))
			for _, q := range []string{qa, qb} {
				_, err := ch.QueueDeclare(q, false, true, false, false, nil)
				must(err)
				must(ch.QueueBind(q, "", ex, false, nil))
			}
			must(ch.Confirm(false))
			for range 10 {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, ex, "", false, false, amqp.Publishing{Body: []byte("hello")})
				must(err)
				if ok, err := dc.WaitContext(ctx); err != nil || !ok {
					t.Fatalf("confirm: %v %v", ok, err)
				}
			}
			for range 5 {
				if _, ok, err := ch.Get(qa, true); err != nil || !ok {
					t.Fatalf("basic.get %s: %v %v", qa, ok, err)
				}
			}
			for _, q := range []string{qa, qb} {
				ds, err := ch.Consume(q, "", true, false, false, false, nil)
				must(err)
				want := map[string]int{qa: 5, qb: 10}[q]
				for range want {
					select {
					case <-ds:
					case <-ctx.Done():
						t.Fatalf("consume %s: %v", q, ctx.Err())
					}
				}
			}
		}},
		// Two QoS 1 subscribers; 10 QoS 1 publishes reach each.
		"mqtt": {10, 20, func(t *testing.T) {
			topic := "count/mqtt/" + run
			got := make(chan struct{}, 100)
			for i := range 2 {
				s := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + d.addrs["mqtt"]).
					SetClientID(fmt.Sprintf("count-sub-%d-%s", i, run)).SetCleanSession(true))
				if tok := s.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("connect: %v", tok.Error())
				}
				defer s.Disconnect(100)
				if tok := s.Subscribe(topic, 1, func(mqtt.Client, mqtt.Message) { got <- struct{}{} }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribe: %v", tok.Error())
				}
			}
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + d.addrs["mqtt"]).
				SetClientID("count-pub-" + run).SetCleanSession(true))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(100)
			for range 10 {
				if tok := c.Publish(topic, 1, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
			for i := range 20 {
				select {
				case <-got:
				case <-ctx.Done():
					t.Fatalf("received %d of 20: %v", i, ctx.Err())
				}
			}
		}},
		// 10 sends; a push consumer from the first offset reads them.
		"rocketmq": {10, 10, func(t *testing.T) {
			rlog.SetLogLevel("error")
			topic := "CountRocket" + run
			ns := primitive.NewPassthroughResolver([]string{d.addrs["rocketmq_namesrv"]})
			p, err := rocketmq.NewProducer(producer.WithNsResolver(ns), producer.WithGroupName("count-p-"+run),
				producer.WithInstanceName("count-p-"+run), producer.WithRetry(2), producer.WithSendMsgTimeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown()
			for range 10 {
				res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("hello")))
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != primitive.SendOK {
					t.Fatalf("send status %v", res.Status)
				}
			}
			got := make(chan struct{}, 100)
			c, err := rocketmq.NewPushConsumer(consumer.WithNsResolver(ns), consumer.WithGroupName("count-c-"+run),
				consumer.WithInstance("count-c-"+run), consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
				for range ms {
					got <- struct{}{}
				}
				return consumer.ConsumeSuccess, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Shutdown()
			for i := range 10 {
				select {
				case <-got:
				case <-ctx.Done():
					t.Fatalf("consumed %d of 10: %v", i, ctx.Err())
				}
			}
		}},
	}
	for _, proto := range []string{"kafka", "amqp", "mqtt", "rocketmq"} {
		f := flows[proto]
		t.Run(proto, func(t *testing.T) {
			f.fn(t)
			if !has[proto] {
				return // reported above
			}
			in := metricKey("quartet_messages_in_total", proto)
			out := metricKey("quartet_messages_out_total", proto)
			wantIn, wantOut := before[in]+f.in, before[out]+f.out
			// The client has seen every message; the counters move no later
			// than the server writes, but poll a little for a straggler
			// (for example a fetch answered after the client stopped).
			var m map[string]float64
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				m = scrape(t, d.addrs["http"])
				if m[in] == wantIn && m[out] == wantOut || time.Now().After(deadline) {
					break
				}
			}
			if _, ok := m[in]; !ok {
				t.Fatalf("/metrics has no %s", in)
			}
			if m[in] != wantIn || m[out] != wantOut {
				t.Errorf("%s = %v, %s = %v; want %v, %v", in, m[in], out, m[out], wantIn, wantOut)
			}
		})
	}
	d.stop(t)
}

// metricKey is the /metrics sample name of a per-protocol counter.
func metricKey(name, proto string) string {
	return name + `{protocol="` + proto + `"}`
}

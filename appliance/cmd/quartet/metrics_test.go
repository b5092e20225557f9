package main

import (
	"context"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMetricsMove produces through each protocol with its real client
// library and checks that /metrics moved: bytes in per protocol, appends
// and fsyncs of the segment writer.
func TestMetricsMove(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon and four client libraries")
	}
	d := startDaemon(t, nil)
	before := scrape(t, d.addrs["http"])
	exercise(t, d.addrs)
	after := scrape(t, d.addrs["http"])
	for _, proto := range []string{"kafka", "amqp", "mqtt", "rocketmq"} {
		b, a := sum(before, "quartet_bytes_in_total", `protocol="`+proto+`"`), sum(after, "quartet_bytes_in_total", `protocol="`+proto+`"`)
		if a <= b {
			t.Errorf("quartet_bytes_in_total{protocol=%q}: %v -> %v", proto, b, a)
		}
		if c := sum(after, "quartet_connections_accepted_total", `protocol="`+proto+`"`); c < 1 {
			t.Errorf("quartet_connections_accepted_total{protocol=%q} = %v", proto, c)
		}
	}
	for _, name := range []string{"quartet_appends_total", "quartet_fsyncs_total", "quartet_fsync_seconds_count",
		"quartet_writer_bytes_total", "quartet_bytes_out_total", "quartet_sendfile_bytes_total"} {
		if b, a := sum(before, name), sum(after, name); a <= b {
			t.Errorf("%s: %v -> %v", name, b, a)
		}
	}
	if v := sum(after, "quartet_ready"); v != 1 {
		t.Errorf("quartet_ready = %v", v)
	}
	if t.Failed() {
		t.Logf("after: %v", after)
	}
	d.stop(t)
}

// exercise publishes through every protocol with its client library, and
// reads the Kafka records back (the sendfile path).
func exercise(t *testing.T, addrs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := map[string]func(t *testing.T){
		"kafka": func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["kafka"]), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("metrics-kafka"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for i := range 10 {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
		},
		"amqp": func(t *testing.T) {
			conn, err := amqp.Dial("amqp://guest:guest@" + addrs["amqp"] + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			if err := ch.Confirm(false); err != nil {
				t.Fatal(err)
			}
			q, err := ch.QueueDeclare("metrics-amqp", true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 10 {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q.Name, false, false,
					amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("hello")})
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := dc.WaitContext(ctx); err != nil || !ok {
					t.Fatalf("confirm: %v %v", ok, err)
				}
			}
		},
		"mqtt": func(t *testing.T) {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addrs["mqtt"]).SetClientID("metrics-test").SetCleanSession(true))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(100)
			for range 10 {
				if tok := c.Publish("metrics/mqtt", 1, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
		},
		"rocketmq": func(t *testing.T) {
			rlog.SetLogLevel("error")
			p, err := rocketmq.NewProducer(
				producer.WithNsResolver(primitive.NewPassthroughResolver([]string{addrs["rocketmq_namesrv"]})),
				producer.WithGroupName("metrics-test"), producer.WithRetry(2), producer.WithSendMsgTimeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			defer p.Shutdown()
			for range 10 {
				res, err := p.SendSync(ctx, primitive.NewMessage("MetricsRocket", []byte("hello")))
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != primitive.SendOK {
					t.Fatalf("send status %v", res.Status)
				}
			}
		},
	}
	for _, proto := range []string{"kafka", "amqp", "mqtt", "rocketmq"} {
		t.Run(proto, produce[proto])
	}
	// Fetch twice: small records (copied) and 64 KiB records (ranges above
	// netpoll's copy threshold go by sendfile).
	fetch := func(t *testing.T, topic string, n int) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["kafka"]), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		got := 0
		for got < n {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("fetched %d of %d: %v", got, n, err)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
			got += fs.NumRecords()
		}
	}
	t.Run("kafka-fetch", func(t *testing.T) { fetch(t, "metrics-kafka", 10) })
	t.Run("kafka-fetch-sendfile", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["kafka"]), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("metrics-big"))
		if err != nil {
			t.Fatal(err)
		}
		big := make([]byte, 64<<10)
		for i := range 20 {
			big[0] = byte(i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cl.Close()
		fetch(t, "metrics-big", 20)
	})
}

package rocketmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func TestConsumerOffsetsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, DefaultConfig())
	p := b.producer("pg-off")
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := p.SendSync(ctx, primitive.NewMessage("off", []byte(fmt.Sprintf("old%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	col := newCollector()
	c := b.pushConsumer("cg-off")
	if err := c.Subscribe("off", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	col.take(t, 10, 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	_ = c.Shutdown() // persists offsets (UPDATE_CONSUMER_OFFSET)
	_ = p.Shutdown()
	time.Sleep(300 * time.Millisecond)
	b.stop()

	b2 := startBroker(t, dir, DefaultConfig())
	p2 := b2.producer("pg-off")
	for i := 0; i < 5; i++ {
		if _, err := p2.SendSync(ctx, primitive.NewMessage("off", []byte(fmt.Sprintf("new%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	col2 := newCollector()
	c2 := b2.pushConsumer("cg-off")
	if err := c2.Subscribe("off", consumer.MessageSelector{}, col2.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	defer c2.Shutdown()
	for _, m := range col2.take(t, 5, 20*time.Second) {
		if string(m.Body[:3]) != "new" {
			t.Fatalf("redelivered %q after restart", m.Body)
		}
	}
	col2.none(t, time.Second)
}

func TestDelayAndHalfSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := txnConfig()
	cfg.DelayLevels = "3s 5s"
	b := startBroker(t, dir, cfg)
	p := b.producer("pg-rs")
	ctx := context.Background()
	m := primitive.NewMessage("rs", []byte("delayed"))
	m.WithDelayTimeLevel(1)
	sent := time.Now()
	if _, err := p.SendSync(ctx, m); err != nil {
		t.Fatal(err)
	}
	l := &txnListener{exec: primitive.UnkonwnState, check: primitive.UnkonwnState}
	tp := b.txnProducer("pg-rs-txn", l)
	if _, err := tp.SendMessageInTransaction(ctx, primitive.NewMessage("rs", []byte("half"))); err != nil {
		t.Fatal(err)
	}
	_ = tp.Shutdown()
	_ = p.Shutdown()
	b.stop()

	b2 := startBroker(t, dir, cfg)
	if n := b2.srv.txn.Pending(); n != 1 {
		t.Fatalf("%d half messages pending after restart", n)
	}
	l2 := &txnListener{exec: primitive.UnkonwnState, check: primitive.CommitMessageState}
	tp2 := b2.txnProducer("pg-rs-txn", l2)
	// A producer heartbeats only to brokers it has a route to: send once so
	// its first heartbeat (1 s after start) reaches the broker.
	if _, err := tp2.SendMessageInTransaction(ctx, primitive.NewMessage("rs-warm", []byte("warm"))); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c := b2.pushConsumer("cg-rs")
	if err := c.Subscribe("rs", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	got := map[string]time.Duration{}
	for _, m := range col.take(t, 2, 20*time.Second) {
		t.Logf("got %q", m.Body)
		got[string(m.Body)] = time.Since(sent)
	}
	if got["delayed"] < 3*time.Second || got["half"] == 0 {
		t.Fatalf("%v", got)
	}
	col.none(t, time.Second)
}

func TestPullConsumerByOffset(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-pull", producer.WithQueueSelector(producer.NewManualQueueSelector()))
	ctx := context.Background()
	var q int
	for i := 0; i < 10; i++ {
		m := primitive.NewMessage("pull", []byte(fmt.Sprintf("m%d", i)))
		m.Queue = &primitive.MessageQueue{Topic: "pull", BrokerName: "quartet", QueueId: 1}
		r, err := p.SendSync(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		q = r.MessageQueue.QueueId
	}
	pc, err := consumer.NewPullConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver([]string{b.nsAddr})),
		consumer.WithGroupName("cg-pull"),
		consumer.WithInstance(instance("pull")))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe("pull", consumer.MessageSelector{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	defer pc.Shutdown()
	mq := &primitive.MessageQueue{Topic: "pull", BrokerName: "quartet", QueueId: q}
	var res *primitive.PullResult
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = pc.PullFrom(ctx, mq, 0, 100)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range res.GetMessageExts() {
		total++
		_ = m
	}
	if res.Status != primitive.PullFound || total == 0 {
		t.Fatalf("status %v, %d messages", res.Status, total)
	}
	res, err = pc.PullFrom(ctx, mq, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	msgs := res.GetMessageExts()
	if len(msgs) != 2 {
		t.Fatalf("status %v next %d max %d msgs %d", res.Status, res.NextBeginOffset, res.MaxOffset, len(msgs))
	}
	if len(msgs) != 2 || msgs[0].QueueOffset != 7 || res.NextBeginOffset != 9 || res.MaxOffset != 10 {
		t.Fatalf("%d messages, first offset %d, next %d, max %d", len(msgs), msgs[0].QueueOffset, res.NextBeginOffset, res.MaxOffset)
	}
	res, err = pc.PullFrom(ctx, mq, 99, 2)
	if err != nil || res.Status != primitive.PullOffsetIllegal || res.NextBeginOffset != 10 {
		t.Fatalf("%v %+v", err, res)
	}
}

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

func TestSendSyncAndPushConsume(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-basic")
	ctx := context.Background()
	const n = 20
	for i := 0; i < n; i++ {
		m := primitive.NewMessage("basic", []byte(fmt.Sprintf("m%d", i)))
		m.WithTag("T").WithKeys([]string{fmt.Sprintf("k%d", i)})
		r, err := p.SendSync(ctx, m)
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if r.Status != primitive.SendOK || r.OffsetMsgID == "" {
			t.Fatalf("send %d: %+v", i, r)
		}
	}
	col := newCollector()
	c := b.pushConsumer("cg-basic")
	if err := c.Subscribe("basic", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	got := col.take(t, n, 30*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.Body)] = true
		if m.GetTags() != "T" || m.Topic != "basic" {
			t.Fatalf("message %+v", m)
		}
	}
	if len(seen) != n {
		t.Fatalf("distinct %d", len(seen))
	}
}

func TestSendAsyncOnewayBatch(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-modes")
	ctx := context.Background()
	// sync first so the route is known for oneway
	if _, err := p.SendSync(ctx, primitive.NewMessage("modes", []byte("s0"))); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 10)
	for i := 0; i < 10; i++ {
		err := p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
			if err == nil && r.Status != primitive.SendOK {
				err = fmt.Errorf("status %v", r.Status)
			}
			done <- err
		}, primitive.NewMessage("modes", []byte(fmt.Sprintf("a%d", i))))
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("async send timed out")
		}
	}
	for i := 0; i < 10; i++ {
		if err := p.SendOneWay(ctx, primitive.NewMessage("modes", []byte(fmt.Sprintf("o%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*primitive.Message
	for i := 0; i < 10; i++ {
		batch = append(batch, primitive.NewMessage("modes", []byte(fmt.Sprintf("b%d", i))))
	}
	r, err := p.SendSync(ctx, batch...)
	if err != nil || r.Status != primitive.SendOK {
		t.Fatalf("batch: %v %+v", err, r)
	}
	big := make([]byte, 8000) // compressed by the client (over 4 KiB)
	for i := range big {
		big[i] = byte('a' + i%7)
	}
	if _, err := p.SendSync(ctx, primitive.NewMessage("modes", big)); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c := b.pushConsumer("cg-modes")
	if err := c.Subscribe("modes", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	got := col.take(t, 32, 30*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		if len(m.Body) == len(big) {
			if string(m.Body) != string(big) {
				t.Fatal("compressed body mismatch")
			}
			seen["big"] = true
			continue
		}
		seen[string(m.Body)] = true
	}
	for _, k := range []string{"s0", "a9", "o9", "b0", "b9", "big"} {
		if !seen[k] {
			t.Fatalf("missing %s (%d distinct)", k, len(seen))
		}
	}
	if len(seen) != 32 {
		t.Fatalf("distinct %d", len(seen))
	}
}

func TestTagFilter(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-tags")
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		tag := []string{"A", "B", "C"}[i%3]
		m := primitive.NewMessage("tags", []byte(fmt.Sprintf("%s%d", tag, i)))
		m.WithTag(tag)
		if _, err := p.SendSync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	col := newCollector()
	c := b.pushConsumer("cg-tags")
	if err := c.Subscribe("tags", consumer.MessageSelector{Type: consumer.TAG, Expression: "A || B"}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	for _, m := range col.take(t, 20, 30*time.Second) {
		if tg := m.GetTags(); tg != "A" && tg != "B" {
			t.Fatalf("tag %q delivered", tg)
		}
	}
	col.none(t, time.Second)
}

func TestClusteringTwoMembers(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-cl")
	ctx := context.Background()
	if _, err := p.SendSync(ctx, primitive.NewMessage("cl", []byte("warm"))); err != nil {
		t.Fatal(err)
	}
	c1, c2 := newCollector(), newCollector()
	m1 := b.pushConsumer("cg-cl")
	m2 := b.pushConsumer("cg-cl")
	for _, x := range []struct {
		c   pushConsumerT
		col *collector
	}{{m1, c1}, {m2, c2}} {
		if err := x.c.Subscribe("cl", consumer.MessageSelector{}, x.col.fn(consumer.ConsumeSuccess)); err != nil {
			t.Fatal(err)
		}
		if err := x.c.Start(); err != nil {
			t.Fatal(err)
		}
		defer x.c.Shutdown()
	}
	time.Sleep(3 * time.Second) // NOTIFY_CONSUMER_IDS_CHANGED → both rebalance
	drain := func(c *collector) map[string]bool {
		m := map[string]bool{}
		for {
			select {
			case x := <-c.ch:
				m[string(x.Body)] = true
			case <-time.After(2 * time.Second):
				return m
			}
		}
	}
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := p.SendSync(ctx, primitive.NewMessage("cl", []byte(fmt.Sprintf("m%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	all := map[string]int{}
	var n1, n2 int
	for time.Now().Before(deadline) {
		a, b2 := drain(c1), drain(c2)
		for k := range a {
			if k != "warm" {
				all[k]++
				n1++
			}
		}
		for k := range b2 {
			if k != "warm" {
				all[k]++
				n2++
			}
		}
		if len(all) == n {
			break
		}
	}
	if len(all) != n || n1 == 0 || n2 == 0 {
		t.Fatalf("distinct %d, member1 %d, member2 %d", len(all), n1, n2)
	}
}

func TestBroadcasting(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-bc")
	ctx := context.Background()
	if _, err := p.SendSync(ctx, primitive.NewMessage("bc", []byte("warm"))); err != nil {
		t.Fatal(err)
	}
	c1, c2 := newCollector(), newCollector()
	for _, col := range []*collector{c1, c2} {
		c := b.pushConsumer("cg-bc", consumer.WithConsumerModel(consumer.BroadCasting))
		if err := c.Subscribe("bc", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown()
	}
	for i := 0; i < 10; i++ {
		if _, err := p.SendSync(ctx, primitive.NewMessage("bc", []byte(fmt.Sprintf("m%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	for i, col := range []*collector{c1, c2} {
		seen := map[string]bool{}
		deadline := time.After(30 * time.Second)
		for len(seen) < 10 {
			select {
			case m := <-col.ch:
				if string(m.Body) != "warm" {
					seen[string(m.Body)] = true
				}
			case <-deadline:
				t.Fatalf("member %d got %d of 10", i, len(seen))
			}
		}
	}
}

func TestOrderedSendOrderlyConsume(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-ord", producer.WithQueueSelector(producer.NewHashQueueSelector()))
	ctx := context.Background()
	const keys, per = 4, 25
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			m := primitive.NewMessage("ord", []byte(fmt.Sprintf("%d:%d", k, i)))
			m.WithShardingKey(fmt.Sprintf("order-%d", k))
			if _, err := p.SendSync(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	col := newCollector()
	c := b.pushConsumer("cg-ord", consumer.WithConsumerOrder(true))
	if err := c.Subscribe("ord", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	next := map[int]int{}
	for _, m := range col.take(t, keys*per, 40*time.Second) {
		var k, i int
		fmt.Sscanf(string(m.Body), "%d:%d", &k, &i)
		if next[k] != i {
			t.Fatalf("key %d: got %d, want %d", k, i, next[k])
		}
		next[k]++
	}
}

func TestDelayLevel2(t *testing.T) {
	b := startBroker(t, t.TempDir(), DefaultConfig())
	p := b.producer("pg-delay")
	ctx := context.Background()
	col := newCollector()
	c := b.pushConsumer("cg-delay")
	if err := c.Subscribe("delay", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendSync(ctx, primitive.NewMessage("delay", []byte("warm"))); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	col.take(t, 1, 20*time.Second)
	m := primitive.NewMessage("delay", []byte("later"))
	m.WithDelayTimeLevel(2)
	start := time.Now()
	if _, err := p.SendSync(ctx, m); err != nil {
		t.Fatal(err)
	}
	col.none(t, 4500*time.Millisecond)
	got := col.take(t, 1, 10*time.Second)[0]
	el := time.Since(start)
	if string(got.Body) != "later" || el < 5*time.Second {
		t.Fatalf("%q after %v", got.Body, el)
	}
	t.Logf("delay level 2 delivered after %v", el)
}

func TestRetryThenDLQ(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DelayLevels = "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s"
	b := startBroker(t, t.TempDir(), cfg)
	p := b.producer("pg-retry")
	ctx := context.Background()
	if _, err := p.SendSync(ctx, primitive.NewMessage("retry", []byte("poison"))); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c := b.pushConsumer("cg-retry", consumer.WithMaxReconsumeTimes(2))
	if err := c.Subscribe("retry", consumer.MessageSelector{}, col.fn(consumer.ConsumeRetryLater)); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	got := col.take(t, 3, 30*time.Second) // original + 2 retries
	for i, m := range got {
		if string(m.Body) != "poison" || int(m.ReconsumeTimes) != i || m.Topic != "retry" {
			t.Fatalf("delivery %d: %q reconsume %d topic %s", i, m.Body, m.ReconsumeTimes, m.Topic)
		}
	}
	dlq := newCollector()
	d := b.pushConsumer("cg-dlq-reader")
	if err := d.Subscribe("%DLQ%cg-retry", consumer.MessageSelector{}, dlq.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	m := dlq.take(t, 1, 20*time.Second)[0]
	if string(m.Body) != "poison" {
		t.Fatalf("dlq %q", m.Body)
	}
	col.none(t, 1500*time.Millisecond)
}

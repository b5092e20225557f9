package rocketmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
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

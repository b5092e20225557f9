package rocketmq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

type txnListener struct {
	exec   primitive.LocalTransactionState
	check  primitive.LocalTransactionState
	checks atomic.Int32
}

func (l *txnListener) ExecuteLocalTransaction(*primitive.Message) primitive.LocalTransactionState {
	return l.exec
}

func (l *txnListener) CheckLocalTransaction(*primitive.MessageExt) primitive.LocalTransactionState {
	l.checks.Add(1)
	return l.check
}

func txnConfig() Config {
	cfg := DefaultConfig()
	cfg.TransactionCheckInterval = time.Second
	cfg.TransactionTimeout = time.Second
	return cfg
}

func (b *broker) txnProducer(group string, l primitive.TransactionListener) interface {
	SendMessageInTransaction(ctx context.Context, msg *primitive.Message) (*primitive.TransactionSendResult, error)
	Shutdown() error
} {
	b.t.Helper()
	p, err := producer.NewTransactionProducer(l,
		producer.WithNsResolver(primitive.NewPassthroughResolver([]string{b.nsAddr})),
		producer.WithGroupName(group),
		producer.WithInstanceName(instance("tp")),
		producer.WithRetry(1))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

func TestTransactionCheckBackCommit(t *testing.T) {
	b := startBroker(t, t.TempDir(), txnConfig())
	col := newCollector()
	c := b.pushConsumer("cg-txn")
	if err := c.Subscribe("txn", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	l := &txnListener{exec: primitive.UnkonwnState, check: primitive.CommitMessageState}
	p := b.txnProducer("pg-txn", l)
	ctx := context.Background()
	r, err := p.SendMessageInTransaction(ctx, primitive.NewMessage("txn", []byte("half")))
	if err != nil || r.State != primitive.UnkonwnState {
		t.Fatalf("%v %+v", err, r)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	m := col.take(t, 1, 20*time.Second)[0]
	if string(m.Body) != "half" || l.checks.Load() < 1 {
		t.Fatalf("%q after %d checks", m.Body, l.checks.Load())
	}
	col.none(t, 2500*time.Millisecond) // decided: no more checks, no duplicate
	if n := b.srv.txn.Pending(); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

func TestTransactionRollback(t *testing.T) {
	b := startBroker(t, t.TempDir(), txnConfig())
	col := newCollector()
	c := b.pushConsumer("cg-txn-rb")
	if err := c.Subscribe("txnrb", consumer.MessageSelector{}, col.fn(consumer.ConsumeSuccess)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One rolled back at once, one rolled back by check-back, one committed at once.
	direct := b.txnProducer("pg-txn-rb1", &txnListener{exec: primitive.RollbackMessageState})
	checked := &txnListener{exec: primitive.UnkonwnState, check: primitive.RollbackMessageState}
	viaCheck := b.txnProducer("pg-txn-rb2", checked)
	commit := b.txnProducer("pg-txn-rb3", &txnListener{exec: primitive.CommitMessageState})
	for i, p := range []interface {
		SendMessageInTransaction(ctx context.Context, msg *primitive.Message) (*primitive.TransactionSendResult, error)
	}{direct, viaCheck, commit} {
		if _, err := p.SendMessageInTransaction(ctx, primitive.NewMessage("txnrb", []byte(fmt.Sprintf("m%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if m := col.take(t, 1, 20*time.Second)[0]; string(m.Body) != "m2" {
		t.Fatalf("got %q", m.Body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for checked.checks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if checked.checks.Load() == 0 {
		t.Fatal("no check-back")
	}
	col.none(t, 2*time.Second)
	if n := b.srv.txn.Pending(); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

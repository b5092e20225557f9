package amqp

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestMessageCounts drives every path that counts (or must not count) a
// message with amqp091-go and checks MessageCounts exactly after each step.
func TestMessageCounts(t *testing.T) {
	b := startBroker(t, "", Config{})
	ctx := context.Background()
	_, ch := b.channel()
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 16))
	returns := ch.NotifyReturn(make(chan amqp091.Return, 4))

	want := func(step string, in, out uint64) {
		t.Helper()
		gin, gout := b.s.MessageCounts()
		if gin != in || gout != out {
			t.Fatalf("%s: MessageCounts() = %d, %d; want %d, %d", step, gin, gout, in, out)
		}
	}
	// pub publishes one message and waits for its confirm.
	pub := func(ex, key string, mandatory, wantAck bool) {
		t.Helper()
		must(t, ch.PublishWithContext(ctx, ex, key, mandatory, false, amqp091.Publishing{Body: []byte("m")}))
		select {
		case c := <-confirms:
			if c.Ack != wantAck {
				t.Fatalf("publish %q/%q: ack %v, want %v", ex, key, c.Ack, wantAck)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("publish %q/%q: no confirm", ex, key)
		}
	}
	for _, q := range []string{"q1", "q2", "q3"} {
		_, err := ch.QueueDeclare(q, false, false, false, false, nil)
		must(t, err)
	}
	_, err := ch.QueueDeclare("lim", false, false, false, false, amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	must(t, err)
	must(t, ch.ExchangeDeclare("fx", "fanout", false, false, false, false, nil))
	must(t, ch.QueueBind("q1", "", "fx", false, nil))
	must(t, ch.QueueBind("q2", "", "fx", false, nil))
	want("declared", 0, 0)

	for range 3 {
		pub("", "q1", false, true)
	}
	want("3 to q1", 3, 0)
	pub("fx", "", false, true) // one message, two queues
	want("fanout", 4, 0)
	pub("", "nowhere", false, true) // unroutable, dropped and acked
	want("unroutable", 5, 0)
	pub("", "nowhere", true, true) // unroutable mandatory: returned
	select {
	case <-returns:
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return")
	}
	want("returned", 5, 0)
	pub("", "lim", false, true)
	pub("", "lim", false, false) // refused by overflow: nack
	want("reject-publish", 6, 0)

	// Transactional publishes count on commit.
	_, tch := b.channel()
	must(t, tch.Tx())
	for range 2 {
		must(t, tch.PublishWithContext(ctx, "", "q1", false, false, amqp091.Publishing{Body: []byte("t")}))
	}
	_, err = tch.QueueDeclarePassive("q1", false, false, false, false, nil) // a round trip after the publishes
	must(t, err)
	want("tx before commit", 6, 0)
	must(t, tch.TxCommit())
	want("tx committed", 8, 0)

	// Deliveries: basic.get, consumers, redelivery.
	if d, ok, err := ch.Get("q2", true); err != nil || !ok || string(d.Body) != "m" {
		t.Fatalf("get q2: %v %v", ok, err)
	}
	want("basic.get", 8, 1)
	if _, ok, err := ch.Get("q2", true); err != nil || ok {
		t.Fatalf("get empty q2: %v %v", ok, err)
	}
	want("basic.get-empty", 8, 1)
	cch, err := b.dial().Channel()
	must(t, err)
	ds, err := cch.Consume("q1", "c1", false, false, false, false, nil)
	must(t, err)
	var last amqp091.Delivery
	for range 6 { // 3 + fanout + 2 tx
		last = recv(t, ds)
	}
	want("consumed q1", 8, 7)
	must(t, last.Nack(false, true))
	if d := recv(t, ds); !d.Redelivered {
		t.Fatal("expected a redelivery")
	} else {
		must(t, d.Ack(true))
	}
	want("redelivered", 8, 8)

	// Direct reply-to: the request and the reply are each one in and one out.
	replies, err := cch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	must(t, err)
	must(t, cch.PublishWithContext(ctx, "", "q3", false, false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", Body: []byte("ping")}))
	var req amqp091.Delivery
	for deadline := time.Now().Add(5 * time.Second); ; {
		d, ok, err := ch.Get("q3", true)
		must(t, err)
		if ok {
			req = d
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("request never reached q3")
		}
		time.Sleep(5 * time.Millisecond)
	}
	want("request", 9, 9)
	pub("", req.ReplyTo, false, true)
	if d := recv(t, replies); string(d.Body) != "m" {
		t.Fatalf("reply %q", d.Body)
	}
	want("reply", 10, 10)

	// A stream queue: appends count in, each record read by a consumer out.
	_, err = ch.QueueDeclare("st", true, false, false, false, amqp091.Table{"x-queue-type": "stream"})
	must(t, err)
	pub("", "st", false, true)
	pub("", "st", false, true)
	want("stream appends", 12, 10)
	must(t, cch.Qos(10, 0, false))
	sds, err := cch.Consume("st", "c2", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	must(t, err)
	recv(t, sds)
	recv(t, sds)
	want("stream reads", 12, 12)
}

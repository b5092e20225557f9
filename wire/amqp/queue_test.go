package amqp

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestConfirmsAndRejectPublish(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	must(t, ch.Confirm(false))
	q, err := ch.QueueDeclare("bounded", true, false, false, false, amqp091.Table{"x-max-length": int32(2), "x-overflow": "reject-publish"})
	must(t, err)
	var acks, nacks int
	for i := 0; i < 4; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q.Name, false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte(fmt.Sprint(i))})
		must(t, err)
		ok, err := dc.WaitContext(context.Background())
		must(t, err)
		if ok {
			acks++
		} else {
			nacks++
		}
	}
	if acks != 2 || nacks != 2 {
		t.Fatalf("acks %d nacks %d", acks, nacks)
	}
	// Many outstanding persistent confirms.
	_, err = ch.QueueDelete("bounded", false, false, false)
	must(t, err)
	q, err = ch.QueueDeclare("many", true, false, false, false, nil)
	must(t, err)
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 2000))
	for i := 0; i < 1000; i++ {
		publish(t, ch, "", q.Name, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte("x")})
	}
	for i := 0; i < 1000; i++ {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatal("nack")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d confirms", i)
		}
	}
}

func TestPrefetchLimits(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "pf", nil)
	for i := 0; i < 20; i++ {
		publish(t, ch, "", q, amqp091.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	_, cch := b.channel()
	must(t, cch.Qos(3, 0, false))
	ds, err := cch.Consume(q, "", false, false, false, false, nil)
	must(t, err)
	var got []amqp091.Delivery
	for i := 0; i < 3; i++ {
		got = append(got, recv(t, ds))
	}
	none(t, ds, 150*time.Millisecond)
	must(t, got[0].Ack(false))
	d := recv(t, ds)
	none(t, ds, 100*time.Millisecond)
	must(t, d.Ack(true)) // multiple: acks the rest
	for i := 0; i < 3; i++ {
		recv(t, ds)
	}
	none(t, ds, 100*time.Millisecond)
	// Channel-global limit shared by two consumers.
	_, gch := b.channel()
	q2 := declareQ(t, gch, "pf2", nil)
	for i := 0; i < 10; i++ {
		publish(t, gch, "", q2, amqp091.Publishing{Body: []byte("g")})
	}
	must(t, gch.Qos(4, 0, true))
	d1, _ := gch.Consume(q2, "c1", false, false, false, false, nil)
	d2, _ := gch.Consume(q2, "c2", false, false, false, false, nil)
	n := 0
	timeout := time.After(300 * time.Millisecond)
loop:
	for {
		select {
		case <-d1:
			n++
		case <-d2:
			n++
		case <-timeout:
			break loop
		}
	}
	if n != 4 {
		t.Fatalf("global prefetch 4 delivered %d", n)
	}
}

func TestNackRequeueRedelivery(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "nr", nil)
	publish(t, ch, "", q, amqp091.Publishing{Body: []byte("a")})
	publish(t, ch, "", q, amqp091.Publishing{Body: []byte("b")})
	ds, err := ch.Consume(q, "", false, false, false, false, nil)
	must(t, err)
	d1, d2 := recv(t, ds), recv(t, ds)
	must(t, d2.Nack(true, true)) // both back, in order
	r1, r2 := recv(t, ds), recv(t, ds)
	if string(r1.Body) != "a" || string(r2.Body) != "b" || !r1.Redelivered || !r2.Redelivered {
		t.Fatalf("%q %v %q %v", r1.Body, r1.Redelivered, r2.Body, r2.Redelivered)
	}
	_ = d1
	must(t, r1.Reject(false)) // dropped (no DLX)
	must(t, r2.Ack(false))
	none(t, ds, 100*time.Millisecond)
	// Unknown tag: channel error 406.
	ch2 := ch
	must(t, ch2.Ack(999, false))
	select {
	case e := <-ch.NotifyClose(make(chan *amqp091.Error, 1)):
		if e == nil || e.Code != PreconditionFailed {
			t.Fatalf("%v", e)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no channel close for unknown delivery tag")
	}
	// Closing a channel requeues its unacked messages.
	_, c3 := b.channel()
	publish(t, c3, "", q, amqp091.Publishing{Body: []byte("c")})
	ds3, _ := c3.Consume(q, "", false, false, false, false, nil)
	recv(t, ds3)
	must(t, c3.Close())
	_, c4 := b.channel()
	d, ok, err := c4.Get(q, true)
	must(t, err)
	if !ok || string(d.Body) != "c" || !d.Redelivered {
		t.Fatalf("after close: %v %q %v", ok, d.Body, d.Redelivered)
	}
	// basic.recover requeues too.
	publish(t, c4, "", q, amqp091.Publishing{Body: []byte("r")})
	ds4, _ := c4.Consume(q, "", false, false, false, false, nil)
	recv(t, ds4)
	must(t, c4.Recover(true)) //lint:ignore SA1019 basic.recover is the method under test
	if d := recv(t, ds4); !d.Redelivered {
		t.Fatal("recover did not redeliver")
	}
}

func TestTTLAndDeadLetterChain(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	must(t, ch.ExchangeDeclare("dlx1", "direct", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("dlx2", "fanout", false, false, false, false, nil))
	declareQ(t, ch, "ttl-q", amqp091.Table{"x-message-ttl": int32(50), "x-dead-letter-exchange": "dlx1", "x-dead-letter-routing-key": "hop"})
	declareQ(t, ch, "hop-q", amqp091.Table{"x-dead-letter-exchange": "dlx2"})
	final := declareQ(t, ch, "final-q", nil)
	must(t, ch.QueueBind("hop-q", "hop", "dlx1", false, nil))
	must(t, ch.QueueBind(final, "", "dlx2", false, nil))
	publish(t, ch, "", "ttl-q", amqp091.Publishing{Body: []byte("m1")})
	publish(t, ch, "", "ttl-q", amqp091.Publishing{Body: []byte("m2"), Expiration: "10"})
	hop, err := ch.Consume("hop-q", "", false, false, false, false, nil)
	must(t, err)
	for i := 0; i < 2; i++ {
		d := recv(t, hop)
		deaths, _ := d.Headers["x-death"].([]any)
		if len(deaths) != 1 || deaths[0].(amqp091.Table)["reason"] != "expired" || d.RoutingKey != "hop" {
			t.Fatalf("x-death %v rk %s", d.Headers, d.RoutingKey)
		}
		must(t, d.Reject(false)) // → dlx2 → final
	}
	_, ch2 := b.channel()
	fin, err := ch2.Consume(final, "", true, false, false, false, nil)
	must(t, err)
	for i := 0; i < 2; i++ {
		d := recv(t, fin)
		deaths, _ := d.Headers["x-death"].([]any)
		if len(deaths) != 2 || deaths[0].(amqp091.Table)["reason"] != "rejected" ||
			d.Headers["x-first-death-reason"] != "expired" || d.Headers["x-first-death-queue"] != "ttl-q" {
			t.Fatalf("chain headers %v", d.Headers)
		}
	}
}

func TestMaxLengthOverflowModes(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	must(t, ch.ExchangeDeclare("ovf-dlx", "fanout", false, false, false, false, nil))
	dead := declareQ(t, ch, "ovf-dead", nil)
	must(t, ch.QueueBind(dead, "", "ovf-dlx", false, nil))
	for _, mode := range []string{"drop-head", "reject-publish", "reject-publish-dlx"} {
		name := "ovf-" + mode
		declareQ(t, ch, name, amqp091.Table{"x-max-length": int64(2), "x-overflow": mode, "x-dead-letter-exchange": "ovf-dlx"})
		for _, s := range []string{"1", "2", "3"} {
			publish(t, ch, "", name, amqp091.Publishing{Body: []byte(s)})
		}
		time.Sleep(30 * time.Millisecond)
		got := drainGet(t, ch, name)
		deadGot := drainGet(t, ch, dead)
		var want, wantDead []string
		switch mode {
		case "drop-head":
			want, wantDead = []string{"2", "3"}, []string{"1"}
		case "reject-publish":
			want, wantDead = []string{"1", "2"}, nil
		case "reject-publish-dlx":
			want, wantDead = []string{"1", "2"}, []string{"3"}
		}
		if !eq(got, want) || !eq(deadGot, wantDead) {
			t.Errorf("%s: queue %v dead %v", mode, got, deadGot)
		}
	}
	// max-length-bytes
	declareQ(t, ch, "ovf-bytes", amqp091.Table{"x-max-length-bytes": int32(10)})
	publish(t, ch, "", "ovf-bytes", amqp091.Publishing{Body: []byte("123456")})
	publish(t, ch, "", "ovf-bytes", amqp091.Publishing{Body: []byte("abcdef")})
	time.Sleep(30 * time.Millisecond)
	if got := drainGet(t, ch, "ovf-bytes"); !eq(got, []string{"abcdef"}) {
		t.Errorf("max-length-bytes: %v", got)
	}
}

func TestPriorities(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "prio", amqp091.Table{"x-max-priority": int32(10)})
	for i, p := range []uint8{1, 5, 0, 9, 5} {
		publish(t, ch, "", q, amqp091.Publishing{Priority: p, Body: []byte(fmt.Sprintf("%d-%d", p, i))})
	}
	time.Sleep(30 * time.Millisecond)
	var got []string
	for i := 0; i < 5; i++ {
		got = append(got, getBody(t, ch, q))
	}
	want := []string{"9-3", "5-1", "5-4", "1-0", "0-2"}
	if !eq(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestSingleActiveConsumerFailover(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "sac", amqp091.Table{"x-single-active-consumer": true})
	_, c1 := b.channel()
	_, c2 := b.channel()
	d1, err := c1.Consume(q, "one", true, false, false, false, nil)
	must(t, err)
	d2, err := c2.Consume(q, "two", true, false, false, false, nil)
	must(t, err)
	for i := 0; i < 5; i++ {
		publish(t, ch, "", q, amqp091.Publishing{Body: []byte("x")})
	}
	for i := 0; i < 5; i++ {
		recv(t, d1)
	}
	none(t, d2, 100*time.Millisecond)
	must(t, c1.Cancel("one", false))
	publish(t, ch, "", q, amqp091.Publishing{Body: []byte("y")})
	if d := recv(t, d2); string(d.Body) != "y" {
		t.Fatal(string(d.Body))
	}
}

func TestTransactions(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q, err := ch.QueueDeclare("txq", true, false, false, false, nil)
	must(t, err)
	must(t, ch.Tx())
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("rolled-back")})
	must(t, ch.TxRollback())
	publish(t, ch, "", q.Name, amqp091.Publishing{DeliveryMode: 2, Body: []byte("committed")})
	_, other := b.channel()
	if b := getBody(t, other, q.Name); b != "" {
		t.Fatalf("visible before commit: %q", b)
	}
	must(t, ch.TxCommit())
	d, ok, err := ch.Get(q.Name, false)
	must(t, err)
	if !ok || string(d.Body) != "committed" {
		t.Fatalf("%v %q", ok, d.Body)
	}
	must(t, d.Ack(false))
	must(t, ch.TxRollback()) // ack undone
	must(t, ch.Close())
	d, ok, err = other.Get(q.Name, true)
	must(t, err)
	if !ok || !d.Redelivered {
		t.Fatal("rolled-back ack: message should be back, redelivered")
	}
	// tx then confirm is refused.
	_, c3 := b.channel()
	must(t, c3.Tx())
	var ae *amqp091.Error
	if err := c3.Confirm(false); !errors.As(err, &ae) || ae.Code != PreconditionFailed {
		t.Fatalf("confirm after tx: %v", err)
	}
}

package amqp

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("got %v, want code %d", err, code)
	}
}

func TestQueueLifecycle(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	// passive on a missing queue: 404
	_, err := ch.QueueDeclarePassive("missing", false, false, false, false, nil)
	wantCode(t, err, NotFound)
	// exclusive: other connections get 405; gone with its connection
	c1, ex := b.channel()
	q, err := ex.QueueDeclare("excl", false, false, true, false, nil)
	must(t, err)
	_, other := b.channel()
	_, err = other.QueueDeclarePassive(q.Name, false, false, true, false, nil)
	wantCode(t, err, ResourceLocked)
	c1.Close()
	time.Sleep(50 * time.Millisecond)
	_, ch2 := b.channel()
	_, err = ch2.QueueDeclarePassive("excl", false, false, true, false, nil)
	wantCode(t, err, NotFound)
	// auto-delete: gone when its last consumer cancels
	_, ch3 := b.channel()
	_, err = ch3.QueueDeclare("auto", false, true, false, false, nil)
	must(t, err)
	_, err = ch3.Consume("auto", "c", false, false, false, false, nil)
	must(t, err)
	must(t, ch3.Cancel("c", false))
	time.Sleep(50 * time.Millisecond)
	_, err = ch3.QueueDeclarePassive("auto", false, true, false, false, nil)
	wantCode(t, err, NotFound)
	// x-expires: unused queue deleted
	_, ch4 := b.channel()
	_, err = ch4.QueueDeclare("expiring", false, false, false, false, amqp091.Table{"x-expires": int32(100)})
	must(t, err)
	time.Sleep(400 * time.Millisecond)
	_, err = ch4.QueueDeclarePassive("expiring", false, false, false, false, nil)
	wantCode(t, err, NotFound)
	// purge, get-empty, delete if-empty
	_, ch5 := b.channel()
	pq := declareQ(t, ch5, "purge-me", nil)
	for i := 0; i < 3; i++ {
		publish(t, ch5, "", pq, amqp091.Publishing{Body: []byte("x")})
	}
	_, err = ch5.QueueDelete(pq, false, true, false)
	wantCode(t, err, PreconditionFailed)
	_, ch5 = b.channel()
	n, err := ch5.QueuePurge(pq, false)
	must(t, err)
	if n != 3 {
		t.Fatalf("purged %d", n)
	}
	if _, ok, _ := ch5.Get(pq, true); ok {
		t.Fatal("get after purge")
	}
	_, err = ch5.QueueDelete(pq, false, true, false)
	must(t, err)
}

func TestConsumerCancelNotify(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "doomed", nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	_, err := ch.Consume(q, "watcher", false, false, false, false, nil)
	must(t, err)
	_, admin := b.channel()
	_, err = admin.QueueDelete(q, false, false, false)
	must(t, err)
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Fatal(tag)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no basic.cancel from the server")
	}
}

func TestQuorumDeliveryLimit(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	_, err := ch.QueueDeclare("qq", false, false, false, false, amqp091.Table{"x-queue-type": "quorum"})
	wantCode(t, err, PreconditionFailed) // quorum queues must be durable
	_, ch = b.channel()
	must(t, ch.ExchangeDeclare("qq-dlx", "fanout", false, false, false, false, nil))
	dq := declareQ(t, ch, "qq-dead", nil)
	must(t, ch.QueueBind(dq, "", "qq-dlx", false, nil))
	_, err = ch.QueueDeclare("qq", true, false, false, false, amqp091.Table{"x-queue-type": "quorum",
		"x-delivery-limit": int32(2), "x-dead-letter-exchange": "qq-dlx"})
	must(t, err)
	publish(t, ch, "", "qq", amqp091.Publishing{Body: []byte("poison")})
	ds, err := ch.Consume("qq", "", false, false, false, false, nil)
	must(t, err)
	for i := 0; i < 3; i++ {
		d := recv(t, ds)
		must(t, d.Nack(false, true))
	}
	none(t, ds, 100*time.Millisecond)
	_, ch2 := b.channel()
	d, ok, err := ch2.Get(dq, true)
	must(t, err)
	if !ok || string(d.Body) != "poison" {
		t.Fatal("not dead-lettered after the delivery limit")
	}
}

func TestConsumerPriorities(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "cprio", nil)
	_, lo := b.channel()
	_, hi := b.channel()
	dlo, err := lo.Consume(q, "lo", true, false, false, false, amqp091.Table{"x-priority": int32(1)})
	must(t, err)
	dhi, err := hi.Consume(q, "hi", true, false, false, false, amqp091.Table{"x-priority": int32(10)})
	must(t, err)
	time.Sleep(50 * time.Millisecond)
	for i := 0; i < 20; i++ {
		publish(t, ch, "", q, amqp091.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < 20; i++ {
		recv(t, dhi)
	}
	none(t, dlo, 100*time.Millisecond)
}

func TestConnectionBlocked(t *testing.T) {
	b := startBroker(t, "", Config{})
	conn, ch := b.channel()
	blocked := conn.NotifyBlocked(make(chan amqp091.Blocking, 2))
	q := declareQ(t, ch, "blk", nil)
	publish(t, ch, "", q, amqp091.Publishing{Body: []byte("before")})
	time.Sleep(30 * time.Millisecond)
	b.s.SetBlocked("test alarm", true)
	select {
	case bl := <-blocked:
		if !bl.Active || bl.Reason != "test alarm" {
			t.Fatalf("%+v", bl)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no connection.blocked")
	}
	publish(t, ch, "", q, amqp091.Publishing{Body: []byte("during")})
	time.Sleep(100 * time.Millisecond)
	_, other := b.channel()
	if got := drainGet(t, other, q); !eq(got, []string{"before"}) {
		t.Fatalf("while blocked: %v", got)
	}
	b.s.SetBlocked("test alarm", false)
	if bl := <-blocked; bl.Active {
		t.Fatal("no connection.unblocked")
	}
	time.Sleep(100 * time.Millisecond)
	if got := drainGet(t, other, q); !eq(got, []string{"during"}) {
		t.Fatalf("after unblock: %v", got)
	}
}

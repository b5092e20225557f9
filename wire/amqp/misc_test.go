package amqp

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestAMQPLAINAndUpdateSecret(t *testing.T) {
	b := startBroker(t, "", Config{})
	var addr string
	for _, a := range b.ns.Addrs() {
		addr = a.String()
	}
	r := rawDial(t, b, 0)
	r.c.Write(AppendMethodFrame(nil, 0, &ConnectionUpdateSecret{NewSecret: "token", Reason: "refresh"}))
	r.expect(IDConnectionUpdateSecretOk)
	// AMQPLAIN login: the response is a field table without its length.
	c, err := amqp091.DialConfig("amqp://"+addr+"/", amqp091.Config{SASL: []amqp091.Authentication{&amqp091.AMQPlainAuth{Username: "guest", Password: "guest"}}})
	must(t, err)
	c.Close()
}

func TestChannelFlow(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q := declareQ(t, ch, "flowq", nil)
	ds, err := ch.Consume(q, "", true, false, false, false, nil)
	must(t, err)
	must(t, ch.Flow(false))
	_, pub := b.channel()
	publish(t, pub, "", q, amqp091.Publishing{Body: []byte("held")})
	none(t, ds, 150*time.Millisecond)
	must(t, ch.Flow(true))
	if d := recv(t, ds); string(d.Body) != "held" {
		t.Fatal(string(d.Body))
	}
}

func TestStreamTimestampOffset(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	_, err := ch.QueueDeclare("ts-stream", true, false, false, false, amqp091.Table{"x-queue-type": "stream"})
	must(t, err)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 4))
	publish(t, ch, "", "ts-stream", amqp091.Publishing{Body: []byte("old")})
	<-confirms
	time.Sleep(2100 * time.Millisecond) // AMQP timestamps have 1 s resolution
	mark := time.Now()
	publish(t, ch, "", "ts-stream", amqp091.Publishing{Body: []byte("new")})
	<-confirms
	_, cch := b.channel()
	must(t, cch.Qos(10, 0, false))
	ds, err := cch.Consume("ts-stream", "", false, false, false, false, amqp091.Table{"x-stream-offset": mark.Add(-200 * time.Millisecond)})
	must(t, err)
	if d := recv(t, ds); string(d.Body) != "new" {
		t.Fatalf("timestamp offset gave %q", d.Body)
	}
}

func TestStreamRetention(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	_, err := ch.QueueDeclare("ret-stream", true, false, false, false, amqp091.Table{"x-queue-type": "stream",
		"x-max-length-bytes": int64(3000), "x-stream-max-segment-size-bytes": int64(1000), "x-max-age": "1D"})
	must(t, err)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 100))
	body := make([]byte, 100)
	for i := 0; i < 60; i++ {
		publish(t, ch, "", "ret-stream", amqp091.Publishing{Body: body})
	}
	for i := 0; i < 60; i++ {
		<-confirms
	}
	b.s.vh.store.retainStreams(time.Now())
	_, cch := b.channel()
	must(t, cch.Qos(10, 0, false))
	ds, err := cch.Consume("ret-stream", "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	must(t, err)
	d := recv(t, ds)
	if off, _ := d.Headers["x-stream-offset"].(int64); off == 0 {
		t.Fatal("retention deleted nothing")
	}
	_, bad := b.channel()
	_, err = bad.QueueDeclare("bad-age", true, false, false, false, amqp091.Table{"x-queue-type": "stream", "x-max-age": "7X"})
	wantCode(t, err, PreconditionFailed)
}

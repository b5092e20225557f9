package amqp

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestPublishConsume(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	must(t, err)
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("hello")})
	ds, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	must(t, err)
	d := recv(t, ds)
	if string(d.Body) != "hello" || d.Redelivered {
		t.Fatalf("%+v", d)
	}
	must(t, d.Ack(false))
}

package amqp

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func declareQ(t *testing.T, ch *amqp091.Channel, name string, args amqp091.Table) string {
	t.Helper()
	q, err := ch.QueueDeclare(name, false, false, false, false, args)
	must(t, err)
	return q.Name
}

func drainGet(t *testing.T, ch *amqp091.Channel, q string) []string {
	t.Helper()
	var out []string
	for {
		b := getBody(t, ch, q)
		if b == "" {
			break
		}
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRoutingTypes(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	qs := map[string]string{}
	for _, n := range []string{"d", "f", "t1", "t2", "hall", "hany", "m"} {
		qs[n] = declareQ(t, ch, "rt-"+n, nil)
	}
	must(t, ch.QueueBind(qs["d"], "k1", "amq.direct", false, nil))
	must(t, ch.QueueBind(qs["f"], "", "amq.fanout", false, nil))
	must(t, ch.QueueBind(qs["t1"], "a.*.c", "amq.topic", false, nil))
	must(t, ch.QueueBind(qs["t2"], "a.#", "amq.topic", false, nil))
	must(t, ch.QueueBind(qs["hall"], "", "amq.headers", false, amqp091.Table{"x-match": "all", "x": "1", "y": int32(2)}))
	must(t, ch.QueueBind(qs["hany"], "", "amq.headers", false, amqp091.Table{"x-match": "any", "x": "1", "y": int32(2)}))
	must(t, ch.QueueBind(qs["m"], "", "amq.match", false, amqp091.Table{"z": "1"}))
	publish(t, ch, "", qs["d"], amqp091.Publishing{Body: []byte("default")})
	publish(t, ch, "amq.direct", "k1", amqp091.Publishing{Body: []byte("direct")})
	publish(t, ch, "amq.direct", "k2", amqp091.Publishing{Body: []byte("nowhere")})
	publish(t, ch, "amq.fanout", "whatever", amqp091.Publishing{Body: []byte("fan")})
	publish(t, ch, "amq.topic", "a.b.c", amqp091.Publishing{Body: []byte("abc")})
	publish(t, ch, "amq.topic", "a.x.y.z", amqp091.Publishing{Body: []byte("axyz")})
	publish(t, ch, "amq.headers", "", amqp091.Publishing{Headers: amqp091.Table{"x": "1", "y": int32(2)}, Body: []byte("h-both")})
	publish(t, ch, "amq.headers", "", amqp091.Publishing{Headers: amqp091.Table{"x": "1"}, Body: []byte("h-x")})
	publish(t, ch, "amq.match", "", amqp091.Publishing{Headers: amqp091.Table{"z": "1"}, Body: []byte("match")})
	time.Sleep(50 * time.Millisecond)
	want := map[string][]string{
		"d": {"default", "direct"}, "f": {"fan"}, "t1": {"abc"}, "t2": {"abc", "axyz"},
		"hall": {"h-both"}, "hany": {"h-both", "h-x"}, "m": {"match"},
	}
	for n, w := range want {
		if got := drainGet(t, ch, qs[n]); !eq(got, w) {
			t.Errorf("queue %s: got %v want %v", n, got, w)
		}
	}
}

func TestUserExchangesE2EAndAlternate(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	must(t, ch.ExchangeDeclare("ae", "fanout", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("src", "direct", false, false, false, false, amqp091.Table{"alternate-exchange": "ae"}))
	must(t, ch.ExchangeDeclare("mid", "topic", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("hx", "headers", false, false, false, false, nil))
	must(t, ch.ExchangeBind("mid", "k.#", "src", false, nil))
	qa := declareQ(t, ch, "e2e-a", nil)
	qu := declareQ(t, ch, "e2e-unrouted", nil)
	qh := declareQ(t, ch, "e2e-h", nil)
	must(t, ch.QueueBind(qa, "#", "mid", false, nil))
	must(t, ch.QueueBind(qu, "", "ae", false, nil))
	must(t, ch.QueueBind(qh, "", "hx", false, amqp091.Table{"x-match": "any", "a": "1"}))
	must(t, ch.ExchangeBind("mid", "k.x", "src", false, nil)) // same source/destination, other key
	publish(t, ch, "src", "k.x", amqp091.Publishing{Body: []byte("via-mid")})
	publish(t, ch, "src", "other", amqp091.Publishing{Body: []byte("to-ae")})
	publish(t, ch, "hx", "", amqp091.Publishing{Headers: amqp091.Table{"a": "1"}, Body: []byte("hx")})
	time.Sleep(50 * time.Millisecond)
	if got := drainGet(t, ch, qa); !eq(got, []string{"via-mid"}) {
		t.Errorf("e2e: %v", got)
	}
	if got := drainGet(t, ch, qu); !eq(got, []string{"to-ae"}) {
		t.Errorf("alternate: %v", got)
	}
	if got := drainGet(t, ch, qh); !eq(got, []string{"hx"}) {
		t.Errorf("headers: %v", got)
	}
	must(t, ch.ExchangeUnbind("mid", "k.#", "src", false, nil))
	must(t, ch.ExchangeUnbind("mid", "k.x", "src", false, nil))
	publish(t, ch, "src", "k.x", amqp091.Publishing{Body: []byte("after-unbind")})
	time.Sleep(30 * time.Millisecond)
	if got := drainGet(t, ch, qu); !eq(got, []string{"after-unbind"}) {
		t.Errorf("after unbind: %v", got)
	}
	must(t, ch.ExchangeDelete("mid", false, false))
	// Inequivalent redeclare: 406 closes the channel.
	err := ch.ExchangeDeclare("src", "fanout", false, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != PreconditionFailed {
		t.Fatalf("redeclare: %v", err)
	}
}

func TestMandatoryReturn(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	must(t, ch.PublishWithContext(context.Background(), "amq.direct", "nobody", true, false, amqp091.Publishing{Body: []byte("lost")}))
	select {
	case r := <-returns:
		if r.ReplyCode != NoRoute || string(r.Body) != "lost" || r.RoutingKey != "nobody" {
			t.Fatalf("%+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no return")
	}
	if c := <-confirms; !c.Ack {
		t.Fatal("unroutable mandatory message must still be acked")
	}
}

func TestDirectReplyTo(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, srv := b.channel()
	rq := declareQ(t, srv, "rpc", nil)
	reqs, err := srv.Consume(rq, "", true, false, false, false, nil)
	must(t, err)
	_, cli := b.channel()
	replies, err := cli.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	must(t, err)
	publish(t, cli, "", rq, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", Body: []byte("ping")})
	req := recv(t, reqs)
	if len(req.ReplyTo) <= len("amq.rabbitmq.reply-to.") {
		t.Fatalf("reply-to not rewritten: %q", req.ReplyTo)
	}
	publish(t, srv, "", req.ReplyTo, amqp091.Publishing{Body: []byte("pong")})
	if d := recv(t, replies); string(d.Body) != "pong" {
		t.Fatal(string(d.Body))
	}
}

func TestSenderSelectedDistribution(t *testing.T) {
	b := startBroker(t, "", Config{})
	_, ch := b.channel()
	for _, q := range []string{"ssd-a", "ssd-b", "ssd-c"} {
		declareQ(t, ch, q, nil)
	}
	publish(t, ch, "", "ssd-a", amqp091.Publishing{Headers: amqp091.Table{"CC": []any{"ssd-b"}, "BCC": []any{"ssd-c", "ssd-a"}}, Body: []byte("x")})
	time.Sleep(50 * time.Millisecond)
	for _, q := range []string{"ssd-a", "ssd-b", "ssd-c"} {
		d, ok, err := ch.Get(q, true)
		must(t, err)
		if !ok {
			t.Fatalf("%s got nothing", q)
		}
		if _, has := d.Headers["BCC"]; has {
			t.Fatalf("%s: BCC delivered", q)
		}
		if _, ok, _ := ch.Get(q, true); ok {
			t.Fatalf("%s got a duplicate", q)
		}
	}
}

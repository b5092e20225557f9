package amqp

import (
	"context"
	"fmt"
	"sync"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// BenchmarkEndToEnd: 2 publishers, 1 consumer (prefetch 1000, multi-ack every
// 100) through an in-process broker. Client and broker share the process, so
// use it for profiles of the broker's share, not for rates.
func BenchmarkEndToEnd(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, durable := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/durable=%v", size, durable), func(b *testing.B) {
				benchEndToEnd(b, size, durable)
			})
		}
	}
}

func benchEndToEnd(b *testing.B, size int, durable bool) {
	t := &testing.T{}
	br := startBroker(t, b.TempDir(), Config{})
	defer br.stop()
	conn, err := amqp091.Dial(br.url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	q, err := ch.QueueDeclare("", durable, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(ch.Qos(1000, 0, false))
	ds, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	must(err)
	body := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	n := b.N
	var wg sync.WaitGroup
	for p := 0; p < 2; p++ {
		wg.Add(1)
		go func(count int) {
			defer wg.Done()
			pc, err := amqp091.Dial(br.url)
			if err != nil {
				b.Error(err)
				return
			}
			defer pc.Close()
			pch, _ := pc.Channel()
			mode := amqp091.Transient
			var confirms chan amqp091.Confirmation
			if durable {
				mode = amqp091.Persistent
				pch.Confirm(false)
				confirms = pch.NotifyPublish(make(chan amqp091.Confirmation, 2000))
			}
			out := 0
			for i := 0; i < count; i++ {
				if durable && out >= 1000 {
					<-confirms
					out--
				}
				pch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp091.Publishing{DeliveryMode: mode, Body: body})
				out++
			}
			for durable && out > 0 {
				<-confirms
				out--
			}
		}(n / 2)
	}
	for i := 0; i < n/2*2; i++ {
		d := <-ds
		if i%100 == 99 {
			d.Ack(true)
		}
	}
	wg.Wait()
}

// BenchmarkConsumeBacklog: delivery rate to one amqp091-go consumer
// (prefetch 1000, multi-ack every 100) from a queue filled beforehand.
func BenchmarkConsumeBacklog(b *testing.B) {
	t := &testing.T{}
	br := startBroker(t, b.TempDir(), Config{})
	defer br.stop()
	conn, err := amqp091.Dial(br.url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	q, _ := ch.QueueDeclare("", false, false, false, false, nil)
	body := make([]byte, 16)
	for i := 0; i < b.N; i++ {
		ch.PublishWithContext(context.Background(), "", q.Name, false, false, amqp091.Publishing{Body: body})
	}
	for {
		qq, _ := ch.QueueDeclarePassive(q.Name, false, false, false, false, nil)
		if qq.Messages >= b.N {
			break
		}
	}
	cc, _ := amqp091.Dial(br.url)
	defer cc.Close()
	cch, _ := cc.Channel()
	cch.Qos(1000, 0, false)
	b.ReportAllocs()
	b.ResetTimer()
	ds, _ := cch.Consume(q.Name, "", false, false, false, false, nil)
	for i := 0; i < b.N; i++ {
		d := <-ds
		if i%100 == 99 {
			d.Ack(true)
		}
	}
}

package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// The MQTT server's own counters are on /metrics: a PUBLISH with a wildcard
// in its topic after a good CONNECT closes the connection and counts one
// protocol error.
func TestMQTTMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the daemon")
	}
	d := startDaemon(t, nil)
	defer d.stop(t)
	before := scrape(t, d.addrs["http"])
	for _, name := range []string{"quartet_mqtt_dropped_total", "quartet_mqtt_shared_handovers_total",
		"quartet_mqtt_publisher_pauses_total", "quartet_mqtt_expired_messages_total",
		"quartet_mqtt_wills_published_total", "quartet_mqtt_protocol_errors_total"} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	c, err := net.Dial("tcp", d.addrs["mqtt"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	connect := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'x'}
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	connack := make([]byte, 4)
	if _, err := io.ReadFull(c, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("connack % x: %v", connack, err)
	}
	if _, err := c.Write([]byte{0x30, 5, 0, 3, 'a', '/', '#'}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(connack); err != io.EOF {
		t.Fatalf("connection not closed after a wildcard PUBLISH: %d bytes, %v", n, err)
	}
	name := "quartet_mqtt_protocol_errors_total"
	var got float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = scrape(t, d.addrs["http"])[name]; got == before[name]+1 {
			return
		}
	}
	t.Fatalf("%s = %v, want %v", name, got, before[name]+1)
}

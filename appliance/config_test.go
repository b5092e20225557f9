package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kafka": "127.0.0.1:9092", "amqp": "127.0.0.1:5672", "mqtt": "127.0.0.1:1883",
		"mqtt_ws": "127.0.0.1:8083", "rocketmq_namesrv": "127.0.0.1:9876",
		"rocketmq_broker": "127.0.0.1:10911", "http": "127.0.0.1:8080",
		"kafka_tls": "", "amqp_tls": "", "mqtt_tls": "",
	}
	for _, l := range c.Listeners.All() {
		if l.Addr != want[l.Name] {
			t.Errorf("%s = %q, want %q", l.Name, l.Addr, want[l.Name])
		}
	}
	if c.DataDir != "./data" || c.Flush != "sync" || c.IO != "auto" {
		t.Errorf("defaults: %q %q %q", c.DataDir, c.Flush, c.IO)
	}
	if len(c.Unauthenticated()) != 0 {
		t.Errorf("loopback defaults reported unauthenticated: %v", c.Unauthenticated())
	}
}

func TestLoad(t *testing.T) {
	p := writeFile(t, "q.toml", `
data_dir = "/srv/q"
flush = "async"
flush_interval = "250ms"
io = "sync"
segment_bytes = "64MiB"
retention_bytes = 1073741824
retention_age = "24h"

[listeners.kafka]
addr = "127.0.0.1:19092"
[listeners.amqp]
addr = "0.0.0.0:5672"
[limits]
connections_max = 10
[kafka]
default_partitions = 3
[rocketmq]
queues_per_topic = 8
[[users]]
name = "app"
password = "secret"
protocols = ["amqp"]
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/srv/q" || c.Flush != "async" || c.FlushInterval != 250*time.Millisecond || c.IO != "sync" {
		t.Errorf("top: %+v", c)
	}
	if c.SegmentBytes != 64<<20 || c.RetentionBytes != 1<<30 || c.RetentionAge != 24*time.Hour {
		t.Errorf("sizes: %v %v %v", c.SegmentBytes, c.RetentionBytes, c.RetentionAge)
	}
	if c.Listeners.Kafka.Addr != "127.0.0.1:19092" || c.Listeners.AMQP.Addr != "0.0.0.0:5672" || c.Listeners.MQTT.Addr != "127.0.0.1:1883" {
		t.Errorf("listeners: %+v", c.Listeners)
	}
	if c.Limits.ConnectionsMax != 10 || c.Kafka.DefaultPartitions != 3 || c.RocketMQ.QueuesPerTopic != 8 {
		t.Errorf("limits/protocols: %+v %+v %+v", c.Limits, c.Kafka, c.RocketMQ)
	}
	if !c.AuthConfigured("amqp") || c.AuthConfigured("kafka") {
		t.Error("AuthConfigured")
	}
	if u := c.Unauthenticated(); len(u) != 0 {
		t.Errorf("amqp has users, got %v", u)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`dat_dir = "x"`, "unknown key dat_dir"},
		{"[listeners.kafka]\naddress = \"x\"", "unknown key listeners.kafka.address"},
		{`flush = "sometimes"`, "flush: \"sometimes\" is not one of sync, async"},
		{`io = "mmap"`, "io: \"mmap\""},
		{"[listeners.amqp]\naddr = \"127.0.0.1:9092\"", "listeners.amqp.addr: \"127.0.0.1:9092\" is already used by listeners.kafka"},
		{"[listeners.mqtt]\naddr = \"nohostport\"", "listeners.mqtt.addr"},
		{"[listeners.kafka_tls]\naddr = \"127.0.0.1:9093\"", "listeners.kafka_tls.tls_cert: required"},
		{"[listeners.kafka_tls]\naddr = \"127.0.0.1:9093\"\ntls_cert=\"/nonexistent.pem\"\ntls_key=\"/nonexistent.key\"", "listeners.kafka_tls.tls_"},
		{`segment_bytes = "12"`, "segment_bytes"},
		{`segment_bytes = "lots"`, "bad byte size"},
		{"[limits]\nmemory_low_water_bytes = \"2GiB\"", "limits.memory_low_water_bytes"},
		{"[kafka]\ndefault_partitions = 0", "kafka.default_partitions"},
		{"[mqtt]\nqos_max = 3", "mqtt.qos_max"},
		{"[rocketmq]\ndelay_levels = \"1s x\"", "rocketmq.delay_levels"},
		{"[[users]]\nname = \"a\"", "users[0].password"},
		{"[[users]]\nname = \"a\"\npassword = \"b\"\nprotocols = [\"mqtt\"]", "users[0].protocols: mqtt does not authenticate clients yet"},
		{`log_level = "loud"`, "log_level"},
		{`flush_interval = "soon"`, "flush_interval"},
	} {
		p := writeFile(t, "bad.toml", tc.body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want containing %q", tc.body, err, tc.want)
			continue
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v does not wrap ErrConfig", tc.body, err)
		}
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	p := writeFile(t, "q.toml", `
data_dir = "/from/file"
io = "sync"
[listeners.kafka]
addr = "127.0.0.1:29092"
[listeners.mqtt]
addr = "127.0.0.1:21883"
`)
	c, err := ParseFlags("serve", []string{"--config", p, "--data-dir", "/from/flag", "--kafka", "", "--amqp=127.0.0.1:0", "--segment-bytes", "8MiB", "--kafka-default-partitions", "4"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/flag" {
		t.Errorf("data_dir %q", c.DataDir)
	}
	if c.IO != "sync" {
		t.Errorf("io from file lost: %q", c.IO)
	}
	if c.Listeners.Kafka.Enabled() {
		t.Errorf("--kafka '' should disable, got %q", c.Listeners.Kafka.Addr)
	}
	if c.Listeners.MQTT.Addr != "127.0.0.1:21883" || c.Listeners.AMQP.Addr != "127.0.0.1:0" {
		t.Errorf("listeners %+v", c.Listeners)
	}
	if c.SegmentBytes != 8<<20 || c.Kafka.DefaultPartitions != 4 {
		t.Errorf("%v %v", c.SegmentBytes, c.Kafka.DefaultPartitions)
	}

	// Without a file: defaults + flags.
	c, err = ParseFlags("serve", []string{"--http", ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.HTTP.Enabled() || c.Listeners.Kafka.Addr != "127.0.0.1:9092" {
		t.Errorf("%+v", c.Listeners)
	}

	var sb strings.Builder
	if _, err := ParseFlags("serve", []string{"--flush", "never"}, &sb); err == nil || !strings.Contains(err.Error(), "flush") {
		t.Errorf("bad flag value: %v", err)
	}
	if _, err := ParseFlags("serve", []string{"--no-such-flag"}, &sb); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"0": 0, "4096": 4096, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30, "2MB": 2e6, "3g": 3 << 30} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
		back, err := ParseBytes(got.String())
		if err != nil || back != got {
			t.Errorf("round trip %q: %v %v", got.String(), back, err)
		}
	}
	if _, err := ParseBytes("9999999TiB"); err == nil {
		t.Error("overflow accepted")
	}
}

func TestUnauthenticated(t *testing.T) {
	c := Default()
	c.Listeners.AMQP.Addr = "0.0.0.0:5672"
	c.Listeners.HTTP.Addr = "0.0.0.0:8080"
	u := c.Unauthenticated()
	if len(u) != 1 || u[0].Name != "amqp" {
		t.Fatalf("%v", u)
	}
	c.Users = []User{{Name: "a", Password: "b"}}
	if len(c.Unauthenticated()) != 0 {
		t.Fatal("user for all protocols")
	}
	// A protocol whose server does not check users stays unauthenticated.
	c.Listeners.MQTT.Addr = "0.0.0.0:1883"
	if u := c.Unauthenticated(); len(u) != 1 || u[0].Name != "mqtt" {
		t.Fatalf("%v", u)
	}
}

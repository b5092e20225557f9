package bench

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		proto string
		args  []string
		want  string // substring of the error
	}{
		{"mqtt", []string{"--qos", "3"}, "--qos 3: want 0, 1 or 2"},
		{"mqtt", []string{"--size", "8"}, "--size 8: want 16.."},
		{"mqtt", []string{"--target", "localhost"}, `--target "localhost": want HOST:PORT`},
		{"mqtt", []string{"--target", "h:99999"}, "bad port"},
		{"mqtt", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"mqtt", []string{"--producers", "x"}, `invalid value "x" for flag -producers`},
		{"mqtt", []string{"--prefix", "a/#"}, "--prefix"},
		{"mqtt", []string{"--inflight", "0"}, "--inflight 0"},
		{"mqtt", []string{"--producers", "0", "--consumers", "0"}, "nothing to do"},
		{"mqtt", []string{"--rate", "-1"}, "--rate -1"},
		{"mqtt", []string{"--duration", "0s"}, "--duration 0s"},
		{"mqtt", []string{"extra"}, `unexpected argument "extra"`},
		{"kafka", []string{"--acks", "2"}, "--acks 2"},
		{"kafka", []string{"--compression", "brotli"}, "--compression"},
		{"kafka", []string{"--consume-only"}, "--consume-only needs --topic"},
		{"kafka", []string{"--qos", "1"}, "flag provided but not defined: -qos"},
		{"amqp", []string{"--multi-ack", "2000"}, "exceeds --prefetch"},
		{"amqp", []string{"--queues", "0"}, "--queues 0"},
		{"amqp", []string{"--conns", "5", "--producers", "2"}, "--conns 5"},
		{"rocketmq", []string{"--topics", "0"}, "--topics 0"},
		{"zeromq", nil, `unknown protocol "zeromq"`},
	}
	for _, c := range cases {
		_, err := ParseConfig(c.proto, c.args)
		if err == nil {
			t.Errorf("%s %v: no error", c.proto, c.args)
			continue
		}
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%s %v: %v is not a usage error", c.proto, c.args, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: error %q does not mention %q", c.proto, c.args, err, c.want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("mqtt", []string{"--producers", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Target != "127.0.0.1:1883" || c.Size != 100 || c.Topics != 4 || c.Filter != "bench/#" || c.Label != c.Target {
		t.Fatalf("defaults: %+v", c)
	}
	k, err := ParseConfig("kafka", []string{"--consume-only", "--topic", "t"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Producers != 0 || k.Consumers != 1 || k.Size != 1024 {
		t.Fatalf("consume-only: %+v", k)
	}
	if _, err := ParseConfig("mqtt", []string{"-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), "--qos") && !strings.Contains(err.Error(), "-qos") {
		t.Fatalf("-h: %v", err)
	}
}

// The children must see exactly the parent's configuration.
func TestChildArgsRoundTrip(t *testing.T) {
	for _, a := range [][]string{
		{"mqtt", "--producers", "3", "--qos", "1", "--inflight", "7", "--rate", "1500.5", "--filter", "x/+", "--prefix", "x"},
		{"kafka", "--acks", "1", "--partitions", "6", "--topic", "t", "--group", "--compression", "lz4", "--linger", "5ms"},
		{"amqp", "--confirm", "--durable", "--queues", "3", "--producers", "3", "--conns", "1", "--prefetch", "50", "--multi-ack", "10"},
		{"rocketmq", "--producers", "64", "--conns", "4", "--topic", "rt"},
	} {
		c, err := ParseConfig(a[0], a[1:])
		if err != nil {
			t.Fatal(err)
		}
		c.RunID = "abc"
		args := c.childArgs("pub")
		c2, err := ParseConfig(args[0], args[1:])
		if err != nil {
			t.Fatalf("%v: child args %v: %v", a, args, err)
		}
		c2.Role, c.Role = "", ""
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("%v:\nparent %+v\nchild  %+v", a, c, c2)
		}
	}
}

func TestParseTargetsAndSuite(t *testing.T) {
	tg, err := parseTarget("quartet=127.0.0.1:1883@42", false)
	if err != nil || tg.Label != "quartet" || tg.Addr != "127.0.0.1:1883" || tg.PID != 42 {
		t.Fatalf("%+v %v", tg, err)
	}
	for _, bad := range []string{"127.0.0.1:1883", "x=nohost", "x=h:1@pid"} {
		if _, err := parseTarget(bad, false); err == nil {
			t.Errorf("target %q accepted", bad)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no targets"},
		{[]string{"--mqtt", "a=h:1", "--rounds", "0"}, "--rounds 0"},
		{[]string{"--mqtt", "a=h:1", "--only", "mqtt-nope"}, `unknown scenario "mqtt-nope"`},
		{[]string{"--mqtt", "bad"}, "LABEL=HOST:PORT"},
	} {
		_, err := parseSuite(c.args)
		if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("suite %v: %v, want usage error with %q", c.args, err, c.want)
		}
	}
	sc, err := parseSuite([]string{"--mqtt", "a=h:1", "--mqtt", "b=h:2", "--kafka-ceiling", "s=h:3"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sc.selected() {
		if s.Proto != "mqtt" && s.Proto != "kafka" {
			t.Fatalf("selected %s without a target", s.Name)
		}
	}
	// Every scenario's flags parse.
	for _, s := range Scenarios {
		if s.Idle {
			continue
		}
		args := append([]string(nil), s.Args...)
		if s.TopicOf != "" {
			args = append(args, "--topic", "t")
		}
		if _, err := ParseConfig(s.Proto, args); err != nil {
			t.Errorf("scenario %s: %v", s.Name, err)
		}
		if len(s.CeilingArgs) > 0 {
			if _, err := ParseConfig(s.Proto, append(append([]string(nil), s.CeilingArgs...), "--ceiling")); err != nil {
				t.Errorf("scenario %s ceiling: %v", s.Name, err)
			}
		}
	}
}

func TestIdleFlags(t *testing.T) {
	if _, err := parseIdle([]string{"--conns", "10"}); err == nil || !strings.Contains(err.Error(), "--broker-pid is required") {
		t.Fatalf("missing pid: %v", err)
	}
	if _, err := parseIdle([]string{"--proto", "kafka", "--broker-pid", "1"}); err == nil || !strings.Contains(err.Error(), "want mqtt or amqp") {
		t.Fatalf("bad proto: %v", err)
	}
	ic, err := parseIdle([]string{"--broker-pid", "1", "--proto", "amqp"})
	if err != nil || ic.Target != "127.0.0.1:5672" || ic.Conns != 10000 {
		t.Fatalf("%+v %v", ic, err)
	}
}

func TestMainExitCodes(t *testing.T) {
	if code := Main([]string{"mqtt", "--qos", "9"}); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
	if code := Main([]string{"frobnicate"}); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
	if code := Main(nil); code != 2 {
		t.Fatalf("no command: exit %d, want 2", code)
	}
}

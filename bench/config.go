package bench

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrUsage marks a command-line error; the message says what is wrong.
var ErrUsage = errors.New("bench: usage")

// Protocols the load generator drives.
var protocols = []string{"kafka", "amqp", "mqtt", "rocketmq"}

// defaultTargets are the protocols' standard ports on loopback.
var defaultTargets = map[string]string{
	"kafka":    "127.0.0.1:9092",
	"amqp":     "127.0.0.1:5672",
	"mqtt":     "127.0.0.1:1883",
	"rocketmq": "127.0.0.1:9876",
}

// Config is one load-generator run. It is also written into results.json.
type Config struct {
	Proto    string `json:"proto"`
	Scenario string `json:"scenario,omitempty"`
	Label    string `json:"label"`
	Target   string `json:"target"`

	Producers int           `json:"producers"`
	Consumers int           `json:"consumers"`
	Conns     int           `json:"conns,omitempty"` // connections the producers share (0: one each)
	Size      int           `json:"size"`
	Rate      float64       `json:"rate,omitempty"` // total msgs/s, 0 = closed loop
	Duration  time.Duration `json:"duration"`
	Warmup    time.Duration `json:"warmup"`
	Drain     time.Duration `json:"drain"`
	Topics    int           `json:"topics,omitempty"`
	BrokerPID int           `json:"broker_pid,omitempty"`

	// MQTT
	QoS      int    `json:"qos,omitempty"`
	Inflight int    `json:"inflight,omitempty"` // QoS>0 publishes outstanding per publisher
	Prefix   string `json:"prefix,omitempty"`
	Filter   string `json:"filter,omitempty"`
	PubMode  string `json:"pub_mode,omitempty"` // paho or raw (pre-encoded, batched writes)

	// Kafka
	Acks         int           `json:"acks,omitempty"`
	Partitions   int           `json:"partitions,omitempty"`
	Topic        string        `json:"topic,omitempty"`
	Group        bool          `json:"group,omitempty"`
	Linger       time.Duration `json:"linger,omitempty"`
	Compression  string        `json:"compression,omitempty"`
	ConsumeOnly  bool          `json:"consume_only,omitempty"`
	Ceiling      bool          `json:"ceiling,omitempty"`
	BatchRecords int           `json:"batch_records,omitempty"`
	MaxBuffered  int           `json:"max_buffered,omitempty"` // franz-go MaxBufferedRecords per client
	Consumer     string        `json:"consumer,omitempty"`     // franz (franz-go) or raw (pre-encoded Fetch, batch headers only)

	// AMQP
	Confirm     bool   `json:"confirm,omitempty"`
	Durable     bool   `json:"durable,omitempty"`
	Queues      int    `json:"queues,omitempty"`
	Queue       string `json:"queue,omitempty"`
	Prefetch    int    `json:"prefetch,omitempty"`
	MultiAck    int    `json:"multi_ack,omitempty"`
	Outstanding int    `json:"outstanding,omitempty"`
	AutoAck     bool   `json:"auto_ack,omitempty"`

	// RocketMQ
	BrokerAddr string `json:"broker_addr,omitempty"`

	// Output and process control (not part of the scenario).
	Out      string        `json:"-"`
	Progress time.Duration `json:"-"`
	Quiet    bool          `json:"-"`
	InProc   bool          `json:"-"`
	Role     string        `json:"-"`
	RunID    string        `json:"run_id,omitempty"`

	// consumeExpected is set by a consume-only setup: records to read.
	consumeExpected int64
}

// newFlagSet returns a FlagSet bound to cfg for proto with protocol defaults.
func newFlagSet(proto string, cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("quartet-bench "+proto, flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	cfg.Proto = proto
	fs.StringVar(&cfg.Target, "target", defaultTargets[proto], "broker address HOST:PORT (RocketMQ: the name server)")
	fs.StringVar(&cfg.Label, "label", "", "name of the target in reports (default: the target address)")
	fs.StringVar(&cfg.Scenario, "scenario", "", "scenario name in reports")
	fs.IntVar(&cfg.Producers, "producers", 1, "publishers (goroutines; each with its own connection unless --conns)")
	fs.IntVar(&cfg.Consumers, "consumers", 1, "consumers (each with its own connection)")
	fs.IntVar(&cfg.Conns, "conns", 0, "connections the producers share (0: one per producer)")
	size := 1024
	if proto == "mqtt" || proto == "amqp" {
		size = 100
	}
	fs.IntVar(&cfg.Size, "size", size, "message size in bytes (>= 16: send timestamp + sequence)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total publish rate in msgs/s (open loop); 0 = closed loop, as fast as flow control allows")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up before measuring")
	fs.DurationVar(&cfg.Drain, "drain", 2*time.Second, "after publishers stop, wait this long without progress for the rest")
	fs.IntVar(&cfg.BrokerPID, "broker-pid", 0, "broker process id: report its CPU seconds and peak RSS from /proc")
	fs.StringVar(&cfg.Out, "out", "", "directory for results.json, results.md, chart.svg, chart.html")
	fs.DurationVar(&cfg.Progress, "progress", time.Second, "progress interval (plain lines when stderr is not a terminal)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress output")
	fs.BoolVar(&cfg.InProc, "inproc", false, "run publishers and subscribers in this process (tests; skews results)")
	fs.StringVar(&cfg.Role, "role", "", "internal: run as a child (pub or sub)")
	fs.StringVar(&cfg.RunID, "run-id", "", "internal: run identifier shared with children")
	switch proto {
	case "mqtt":
		fs.IntVar(&cfg.QoS, "qos", 0, "QoS of publishes and the subscription (0, 1 or 2)")
		fs.IntVar(&cfg.Inflight, "inflight", 64, "QoS 1/2 publishes outstanding per publisher")
		fs.IntVar(&cfg.Topics, "topics", 0, "topics published to, PREFIX/0..N-1 (0: one per producer)")
		fs.StringVar(&cfg.Prefix, "prefix", "bench", "topic prefix")
		fs.StringVar(&cfg.Filter, "filter", "", "subscription filter (default PREFIX/#)")
		fs.StringVar(&cfg.PubMode, "pub-mode", "paho", "publishers: paho (one write per publish) or raw (pre-encoded PUBLISH packets batched into 64 KiB writes, QoS 0/1; subscribers stay paho)")
	case "kafka":
		fs.IntVar(&cfg.Acks, "acks", -1, "required acks: 0, 1 or -1 (all)")
		fs.IntVar(&cfg.Topics, "topics", 1, "topics")
		fs.IntVar(&cfg.Partitions, "partitions", 1, "partitions per topic (created by the tool)")
		fs.StringVar(&cfg.Topic, "topic", "", "topic name (default bench-RUNID; with --topics N: NAME-0..N-1)")
		fs.BoolVar(&cfg.Group, "group", false, "consumers join one consumer group (default: each reads every partition)")
		fs.DurationVar(&cfg.Linger, "linger", 0, "producer linger")
		fs.StringVar(&cfg.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
		fs.BoolVar(&cfg.ConsumeOnly, "consume-only", false, "no producers: consume --topic from the beginning to its end (cold read)")
		fs.BoolVar(&cfg.Ceiling, "ceiling", false, "write pre-encoded Produce requests into a discarding sink at --target (machine ceiling)")
		fs.IntVar(&cfg.BatchRecords, "batch-records", 64, "records per pre-encoded request with --ceiling")
		fs.StringVar(&cfg.Consumer, "consumer", "franz", "consumers: franz (franz-go, decodes every record, measures produce→consume latency) or raw (pre-encoded Fetch requests over TCP, reads only batch headers and discards the records: measures the broker's fetch path; no latency)")
		fs.IntVar(&cfg.MaxBuffered, "max-buffered", 1000, "records a producer client buffers unacknowledged (franz-go MaxBufferedRecords, franz-go default 50000; the closed-loop window: 1000 x 1 KiB cut closed-loop p99 from ~210 ms to 19-60 ms here at about the same MB/s as 10000)")
	case "amqp":
		fs.BoolVar(&cfg.Confirm, "confirm", false, "publisher confirms")
		fs.BoolVar(&cfg.Durable, "durable", false, "durable queues and persistent messages")
		fs.IntVar(&cfg.Queues, "queues", 1, "queues (producer i publishes to queue i mod N, consumer j reads queue j mod N)")
		fs.StringVar(&cfg.Queue, "queue", "", "queue name prefix (default bench-RUNID)")
		fs.IntVar(&cfg.Prefetch, "prefetch", 1000, "consumer prefetch (basic.qos count)")
		fs.IntVar(&cfg.MultiAck, "multi-ack", 100, "ack with multiple=true every N deliveries")
		fs.IntVar(&cfg.Outstanding, "outstanding", 1000, "unconfirmed publishes per publisher with --confirm")
		fs.BoolVar(&cfg.AutoAck, "auto-ack", false, "consume with no-ack")
	case "rocketmq":
		fs.IntVar(&cfg.Topics, "topics", 1, "topics")
		fs.StringVar(&cfg.Topic, "topic", "", "topic name (default bench-RUNID)")
		fs.StringVar(&cfg.BrokerAddr, "broker-addr", "", "broker address for topic creation (default: auto-create)")
		fs.BoolVar(&cfg.Ceiling, "ceiling", false, "write pre-encoded SEND_MESSAGE_V2 frames into a discarding sink at --target (machine ceiling)")
	}
	return fs
}

// usageOf renders the flag defaults of fs.
func usageOf(fs *flag.FlagSet) string {
	var b bytes.Buffer
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(new(bytes.Buffer))
	return b.String()
}

// ParseConfig parses the flags of `quartet-bench PROTO` (args without the
// protocol) and validates the result; errors wrap ErrUsage and name the flag.
func ParseConfig(proto string, args []string) (*Config, error) {
	if !isProto(proto) {
		return nil, fmt.Errorf("%w: unknown protocol %q (want one of %s)", ErrUsage, proto, strings.Join(protocols, ", "))
	}
	cfg := &Config{}
	fs := newFlagSet(proto, cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, fmt.Errorf("%w: quartet-bench %s [flags]\n%s", flag.ErrHelp, proto, usageOf(fs))
		}
		return nil, fmt.Errorf("%w: quartet-bench %s: %v (see quartet-bench %s -h)", ErrUsage, proto, err, proto)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: quartet-bench %s: unexpected argument %q", ErrUsage, proto, fs.Arg(0))
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: quartet-bench %s: %v", ErrUsage, proto, err)
	}
	return cfg, nil
}

func isProto(p string) bool {
	for _, q := range protocols {
		if p == q {
			return true
		}
	}
	return false
}

// validate checks ranges and combinations; the error names the flag.
func (c *Config) validate() error {
	if _, port, err := net.SplitHostPort(c.Target); err != nil {
		return fmt.Errorf("--target %q: want HOST:PORT", c.Target)
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("--target %q: bad port", c.Target)
	}
	if c.Producers < 0 || c.Producers > 10000 {
		return fmt.Errorf("--producers %d: want 0..10000", c.Producers)
	}
	if c.Consumers < 0 || c.Consumers > 10000 {
		return fmt.Errorf("--consumers %d: want 0..10000", c.Consumers)
	}
	if c.Producers == 0 && c.Consumers == 0 {
		return errors.New("--producers and --consumers are both 0: nothing to do")
	}
	if c.Conns < 0 || (c.Conns > c.Producers && c.Producers > 0) {
		return fmt.Errorf("--conns %d: want 0..--producers (%d)", c.Conns, c.Producers)
	}
	if c.Size < payloadHeaderBytes || c.Size > 16<<20 {
		return fmt.Errorf("--size %d: want %d..%d bytes (the payload carries a %d-byte timestamp header)", c.Size, payloadHeaderBytes, 16<<20, payloadHeaderBytes)
	}
	if c.Rate < 0 {
		return fmt.Errorf("--rate %v: want >= 0 (0 = closed loop)", c.Rate)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("--duration %v: want > 0", c.Duration)
	}
	if c.Warmup < 0 || c.Drain < 0 {
		return errors.New("--warmup and --drain must be >= 0")
	}
	if c.BrokerPID < 0 {
		return fmt.Errorf("--broker-pid %d: want a process id", c.BrokerPID)
	}
	if c.Role != "" && c.Role != "pub" && c.Role != "sub" {
		return fmt.Errorf("--role %q: want pub or sub", c.Role)
	}
	if c.Topics < 0 || c.Topics > 100000 {
		return fmt.Errorf("--topics %d: want 0..100000", c.Topics)
	}
	switch c.Proto {
	case "mqtt":
		if c.QoS < 0 || c.QoS > 2 {
			return fmt.Errorf("--qos %d: want 0, 1 or 2", c.QoS)
		}
		if c.PubMode != "paho" && c.PubMode != "raw" {
			return fmt.Errorf("--pub-mode %q: want paho or raw", c.PubMode)
		}
		if c.PubMode == "raw" && c.QoS == 2 {
			return errors.New("--pub-mode raw publishes QoS 0 or 1 (use paho for QoS 2)")
		}
		if c.Inflight < 1 || c.Inflight > 65535 {
			return fmt.Errorf("--inflight %d: want 1..65535", c.Inflight)
		}
		if c.Prefix == "" || strings.ContainsAny(c.Prefix, "+#") {
			return fmt.Errorf("--prefix %q: want a topic without wildcards", c.Prefix)
		}
		if c.Filter == "" {
			c.Filter = c.Prefix + "/#"
		}
		if c.Topics == 0 {
			c.Topics = max(c.Producers, 1)
		}
	case "kafka":
		if c.Acks != 0 && c.Acks != 1 && c.Acks != -1 {
			return fmt.Errorf("--acks %d: want 0, 1 or -1", c.Acks)
		}
		if c.Topics < 1 {
			return fmt.Errorf("--topics %d: want >= 1", c.Topics)
		}
		if c.Partitions < 1 || c.Partitions > 10000 {
			return fmt.Errorf("--partitions %d: want 1..10000", c.Partitions)
		}
		switch c.Compression {
		case "none", "gzip", "snappy", "lz4", "zstd":
		default:
			return fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", c.Compression)
		}
		if c.ConsumeOnly {
			if c.Topic == "" {
				return errors.New("--consume-only needs --topic (an existing topic to read from the beginning)")
			}
			c.Producers = 0
			c.Warmup = 0 // measured from the start to the last record
			if c.Consumers == 0 {
				c.Consumers = 1
			}
		}
		switch c.Consumer {
		case "franz":
		case "raw":
			if c.Group {
				return errors.New("--consumer raw reads every partition itself; --group needs --consumer franz")
			}
		default:
			return fmt.Errorf("--consumer %q: want franz or raw", c.Consumer)
		}
		if c.MaxBuffered < 1 {
			return fmt.Errorf("--max-buffered %d: want >= 1", c.MaxBuffered)
		}
		if c.BatchRecords < 1 || c.BatchRecords > 100000 {
			return fmt.Errorf("--batch-records %d: want 1..100000", c.BatchRecords)
		}
	case "amqp":
		if c.Queues < 1 {
			return fmt.Errorf("--queues %d: want >= 1", c.Queues)
		}
		if c.Prefetch < 0 || c.Prefetch > 65535 {
			return fmt.Errorf("--prefetch %d: want 0..65535", c.Prefetch)
		}
		if c.MultiAck < 1 {
			return fmt.Errorf("--multi-ack %d: want >= 1", c.MultiAck)
		}
		if c.Prefetch > 0 && c.MultiAck > c.Prefetch {
			return fmt.Errorf("--multi-ack %d exceeds --prefetch %d: the consumer would stall", c.MultiAck, c.Prefetch)
		}
		if c.Outstanding < 1 {
			return fmt.Errorf("--outstanding %d: want >= 1", c.Outstanding)
		}
	case "rocketmq":
		if c.Topics < 1 {
			return fmt.Errorf("--topics %d: want >= 1", c.Topics)
		}
	}
	if c.Ceiling {
		if c.Consumers > 0 && c.Role == "" {
			c.Consumers = 0
		}
		if c.Producers < 1 {
			return errors.New("--ceiling needs --producers >= 1")
		}
	}
	if c.Label == "" {
		c.Label = c.Target
	}
	return nil
}

// conns returns how many producer connections to open.
func (c *Config) producerConns() int {
	if c.Conns == 0 {
		return c.Producers
	}
	return c.Conns
}

// args renders cfg back to flags, for the child processes.
func (c *Config) childArgs(role string) []string {
	a := []string{c.Proto,
		"--role", role, "--run-id", c.RunID,
		"--target", c.Target, "--label", c.Label,
		"--producers", strconv.Itoa(c.Producers), "--consumers", strconv.Itoa(c.Consumers),
		"--conns", strconv.Itoa(c.Conns), "--size", strconv.Itoa(c.Size),
		"--rate", strconv.FormatFloat(c.Rate, 'f', -1, 64),
		"--duration", c.Duration.String(), "--warmup", c.Warmup.String(), "--drain", c.Drain.String(),
	}
	if c.Proto != "amqp" {
		a = append(a, "--topics", strconv.Itoa(c.Topics))
	}
	switch c.Proto {
	case "mqtt":
		a = append(a, "--qos", strconv.Itoa(c.QoS), "--inflight", strconv.Itoa(c.Inflight),
			"--prefix", c.Prefix, "--filter", c.Filter, "--pub-mode", c.PubMode)
	case "kafka":
		a = append(a, "--acks", strconv.Itoa(c.Acks), "--partitions", strconv.Itoa(c.Partitions),
			"--topic", c.Topic, "--group="+strconv.FormatBool(c.Group), "--linger", c.Linger.String(),
			"--compression", c.Compression, "--consume-only="+strconv.FormatBool(c.ConsumeOnly),
			"--ceiling="+strconv.FormatBool(c.Ceiling), "--batch-records", strconv.Itoa(c.BatchRecords),
			"--max-buffered", strconv.Itoa(c.MaxBuffered), "--consumer", c.Consumer)
	case "amqp":
		a = append(a, "--confirm="+strconv.FormatBool(c.Confirm), "--durable="+strconv.FormatBool(c.Durable),
			"--queues", strconv.Itoa(c.Queues), "--queue", c.Queue, "--prefetch", strconv.Itoa(c.Prefetch),
			"--multi-ack", strconv.Itoa(c.MultiAck), "--outstanding", strconv.Itoa(c.Outstanding),
			"--auto-ack="+strconv.FormatBool(c.AutoAck))
	case "rocketmq":
		a = append(a, "--topic", c.Topic, "--broker-addr", c.BrokerAddr,
			"--ceiling="+strconv.FormatBool(c.Ceiling))
	}
	return a
}

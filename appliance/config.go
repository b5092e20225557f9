package appliance

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ErrConfig is wrapped by every error Load, Validate and ParseFlags return
// about a setting; the message names the TOML key and the reason.
var ErrConfig = errors.New("appliance: invalid config")

// Listener is one listen address. An empty Addr disables the listener.
// TLSCert and TLSKey (PEM files) turn on TLS for it; they are required for
// the *TLS listeners and optional for MQTTWS (wss) and HTTP.
type Listener struct {
	Addr    string `toml:"addr"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// Enabled reports whether the listener has an address.
func (l Listener) Enabled() bool { return l.Addr != "" }

// TLS reports whether the listener is configured for TLS.
func (l Listener) TLS() bool { return l.TLSCert != "" || l.TLSKey != "" }

// Listeners holds one Listener per protocol port. TOML table [listeners.<name>].
type Listeners struct {
	Kafka           Listener `toml:"kafka"`
	KafkaTLS        Listener `toml:"kafka_tls"`
	AMQP            Listener `toml:"amqp"`
	AMQPTLS         Listener `toml:"amqp_tls"`
	MQTT            Listener `toml:"mqtt"`
	MQTTTLS         Listener `toml:"mqtt_tls"`
	MQTTWS          Listener `toml:"mqtt_ws"`
	RocketMQNamesrv Listener `toml:"rocketmq_namesrv"`
	RocketMQBroker  Listener `toml:"rocketmq_broker"`
	HTTP            Listener `toml:"http"`
}

// NamedListener is a listener with its TOML name ("kafka", "mqtt_ws", ...)
// and the protocol it serves ("kafka", "amqp", "mqtt", "rocketmq", "http").
type NamedListener struct {
	Name     string
	Protocol string
	Listener
}

// All returns every listener, enabled or not, in a fixed order.
func (ls *Listeners) All() []NamedListener {
	return []NamedListener{
		{"kafka", "kafka", ls.Kafka},
		{"kafka_tls", "kafka", ls.KafkaTLS},
		{"amqp", "amqp", ls.AMQP},
		{"amqp_tls", "amqp", ls.AMQPTLS},
		{"mqtt", "mqtt", ls.MQTT},
		{"mqtt_tls", "mqtt", ls.MQTTTLS},
		{"mqtt_ws", "mqtt", ls.MQTTWS},
		{"rocketmq_namesrv", "rocketmq", ls.RocketMQNamesrv},
		{"rocketmq_broker", "rocketmq", ls.RocketMQBroker},
		{"http", "http", ls.HTTP},
	}
}

func (ls *Listeners) ptrs() []*Listener {
	return []*Listener{&ls.Kafka, &ls.KafkaTLS, &ls.AMQP, &ls.AMQPTLS, &ls.MQTT, &ls.MQTTTLS,
		&ls.MQTTWS, &ls.RocketMQNamesrv, &ls.RocketMQBroker, &ls.HTTP}
}

// Limits bound every buffer (DESIGN.md "Everything has a limit").
type Limits struct {
	// ConnectionsMax is the total number of client connections across protocols.
	ConnectionsMax int `toml:"connections_max"`
	// Largest frame accepted per protocol; a larger frame gets the
	// protocol's own error.
	KafkaFrameBytesMax    Bytes `toml:"kafka_frame_bytes_max"`
	AMQPFrameBytesMax     Bytes `toml:"amqp_frame_bytes_max"`
	MQTTPacketBytesMax    Bytes `toml:"mqtt_packet_bytes_max"`
	RocketMQFrameBytesMax Bytes `toml:"rocketmq_frame_bytes_max"`
	// OutboundHighWaterBytes is the per-connection queued-output mark at
	// which a slow consumer is throttled (or, for MQTT QoS 0, dropped).
	OutboundHighWaterBytes Bytes `toml:"outbound_high_water_bytes"`
	// Global memory marks: reading from publishers pauses above High and
	// resumes below Low.
	MemoryHighWaterBytes Bytes `toml:"memory_high_water_bytes"`
	MemoryLowWaterBytes  Bytes `toml:"memory_low_water_bytes"`
	// DiskFreeBytesMin: publishes are refused when the data directory's
	// filesystem has less free space than this.
	DiskFreeBytesMin Bytes `toml:"disk_free_bytes_min"`
}

// KafkaConfig holds Kafka protocol defaults. TOML table [kafka].
type KafkaConfig struct {
	AutoCreateTopics  bool `toml:"auto_create_topics"`
	DefaultPartitions int  `toml:"default_partitions"`
	// MessageBytesMax is the largest record batch accepted (message.max.bytes).
	MessageBytesMax Bytes `toml:"message_bytes_max"`
	// AdvertisedAddr is the host:port returned in Metadata; empty means the
	// bound address of the kafka listener.
	AdvertisedAddr string `toml:"advertised_addr"`
	// GroupInitialRebalanceDelay as group.initial.rebalance.delay.ms.
	GroupInitialRebalanceDelay time.Duration `toml:"group_initial_rebalance_delay"`
}

// AMQPConfig holds AMQP 0-9-1 defaults. TOML table [amqp].
type AMQPConfig struct {
	// ChannelsMax is the channel_max offered in connection.tune.
	ChannelsMax int `toml:"channels_max"`
	// Heartbeat offered in connection.tune; 0 disables heartbeats.
	Heartbeat time.Duration `toml:"heartbeat"`
	// QueuesMax bounds the number of queues (durable and transient).
	QueuesMax int `toml:"queues_max"`
}

// MQTTConfig holds MQTT defaults. TOML table [mqtt].
type MQTTConfig struct {
	// QoSMax is the highest QoS granted (0, 1 or 2).
	QoSMax int `toml:"qos_max"`
	// RetainAvailable enables retained messages.
	RetainAvailable bool `toml:"retain_available"`
	// SessionExpiryMax caps the session expiry a client may ask for.
	SessionExpiryMax time.Duration `toml:"session_expiry_max"`
	// KeepAliveMax caps the keep alive (MQTT 5 server keep alive).
	KeepAliveMax time.Duration `toml:"keep_alive_max"`
	// InflightMessagesMax caps the outbound QoS 1/2 window per connection
	// (the client's Receive Maximum lowers it further); 32–64 keeps p99 low.
	InflightMessagesMax int `toml:"inflight_messages_max"`
	// SessionsMax bounds persistent sessions.
	SessionsMax int `toml:"sessions_max"`
}

// RocketMQConfig holds RocketMQ defaults. TOML table [rocketmq].
type RocketMQConfig struct {
	AutoCreateTopics bool `toml:"auto_create_topics"`
	// QueuesPerTopic for auto-created topics.
	QueuesPerTopic int `toml:"queues_per_topic"`
	// ClusterName and BrokerName reported by the name server.
	ClusterName string `toml:"cluster_name"`
	BrokerName  string `toml:"broker_name"`
	// AdvertisedAddr is the broker address the name server returns; empty
	// means the bound address of the rocketmq_broker listener.
	AdvertisedAddr string `toml:"advertised_addr"`
	// MessageBytesMax is the largest message body accepted.
	MessageBytesMax Bytes `toml:"message_bytes_max"`
	// DelayLevels is messageDelayLevel: space-separated durations, level 1 first.
	DelayLevels string `toml:"delay_levels"`
	// TransactionCheckInterval between check-backs of half messages.
	TransactionCheckInterval time.Duration `toml:"transaction_check_interval"`
}

// User is one credential. Protocols lists where it is accepted; empty
// means every protocol in AuthProtocols. TOML array of tables [[users]].
type User struct {
	Name      string   `toml:"name"`
	Password  string   `toml:"password"`
	Protocols []string `toml:"protocols"`
}

// AuthProtocols are the protocols whose servers check [[users]] today
// (AMQP PLAIN/AMQPLAIN). Naming another protocol in users.protocols is a
// config error, not a silent no-op; add a protocol here when its server
// enforces users (Kafka SASL/PLAIN, MQTT username/password, RocketMQ ACL).
var AuthProtocols = []string{"amqp"}

func authEnforced(protocol string) bool {
	for _, p := range AuthProtocols {
		if p == protocol {
			return true
		}
	}
	return false
}

// Config is every setting of the appliance. The zero value is not useful;
// start from Default, Load or ParseFlags.
type Config struct {
	// DataDir holds segments and metadata.
	DataDir string `toml:"data_dir"`
	// LogLevel: debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// Flush: "sync" acknowledges after fdatasync, "async" after the write
	// with a background flush every FlushInterval.
	Flush         string        `toml:"flush"`
	FlushInterval time.Duration `toml:"flush_interval"`
	// IO selects the writer: "uring", "sync" (pwritev+fdatasync) or "auto".
	IO string `toml:"io"`
	// Segments roll at SegmentBytes or SegmentAge, whichever comes first.
	SegmentBytes Bytes         `toml:"segment_bytes"`
	SegmentAge   time.Duration `toml:"segment_age"`
	// Retention deletes whole segments beyond RetentionBytes per partition
	// or older than RetentionAge; 0 means unlimited.
	RetentionBytes Bytes         `toml:"retention_bytes"`
	RetentionAge   time.Duration `toml:"retention_age"`
	// ShutdownTimeout bounds the graceful stop (finish appends, fsync).
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`

	Listeners Listeners      `toml:"listeners"`
	Limits    Limits         `toml:"limits"`
	Kafka     KafkaConfig    `toml:"kafka"`
	AMQP      AMQPConfig     `toml:"amqp"`
	MQTT      MQTTConfig     `toml:"mqtt"`
	RocketMQ  RocketMQConfig `toml:"rocketmq"`
	Users     []User         `toml:"users"`
}

// Default returns the built-in configuration: every listener on loopback at
// its standard port, data in ./data, flush=sync, io=auto.
func Default() Config {
	return Config{
		DataDir:         "./data",
		LogLevel:        "info",
		Flush:           "sync",
		FlushInterval:   time.Second,
		IO:              "auto",
		SegmentBytes:    1 << 30,
		SegmentAge:      7 * 24 * time.Hour,
		RetentionBytes:  0,
		RetentionAge:    7 * 24 * time.Hour,
		ShutdownTimeout: 30 * time.Second,
		Listeners: Listeners{
			Kafka:           Listener{Addr: "127.0.0.1:9092"},
			AMQP:            Listener{Addr: "127.0.0.1:5672"},
			MQTT:            Listener{Addr: "127.0.0.1:1883"},
			MQTTWS:          Listener{Addr: "127.0.0.1:8083"},
			RocketMQNamesrv: Listener{Addr: "127.0.0.1:9876"},
			RocketMQBroker:  Listener{Addr: "127.0.0.1:10911"},
			HTTP:            Listener{Addr: "127.0.0.1:8080"},
		},
		Limits: Limits{
			ConnectionsMax:         100_000,
			KafkaFrameBytesMax:     100 << 20,
			AMQPFrameBytesMax:      128 << 10,
			MQTTPacketBytesMax:     16 << 20,
			RocketMQFrameBytesMax:  16 << 20,
			OutboundHighWaterBytes: 4 << 20,
			MemoryHighWaterBytes:   1 << 30,
			MemoryLowWaterBytes:    768 << 20,
			DiskFreeBytesMin:       256 << 20,
		},
		Kafka: KafkaConfig{
			AutoCreateTopics:  true,
			DefaultPartitions: 1,
			MessageBytesMax:   1048588,
		},
		AMQP: AMQPConfig{
			ChannelsMax: 2047,
			Heartbeat:   60 * time.Second,
			QueuesMax:   100_000,
		},
		MQTT: MQTTConfig{
			QoSMax:              2,
			RetainAvailable:     true,
			SessionExpiryMax:    7 * 24 * time.Hour,
			KeepAliveMax:        time.Hour,
			InflightMessagesMax: 64,
			SessionsMax:         100_000,
		},
		RocketMQ: RocketMQConfig{
			AutoCreateTopics:         true,
			QueuesPerTopic:           4,
			ClusterName:              "DefaultCluster",
			BrokerName:               "quartet",
			MessageBytesMax:          4 << 20,
			DelayLevels:              "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h",
			TransactionCheckInterval: time.Minute,
		},
	}
}

// Load reads a TOML file over Default (keys absent from the file keep their
// default). An unknown key is an error naming it. The result is validated.
func Load(path string) (Config, error) {
	cfg := Default()
	if err := cfg.loadFile(path); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func (c *Config) loadFile(path string) error {
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("%w: %s: unknown key %s", ErrConfig, path, strings.Join(keys, ", "))
	}
	return nil
}

func cfgErr(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// Validate checks every setting and returns the first problem found, naming
// the TOML key and the reason.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return cfgErr("data_dir", "must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return cfgErr("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.Flush {
	case "sync", "async":
	default:
		return cfgErr("flush", "%q is not one of sync, async", c.Flush)
	}
	if c.FlushInterval <= 0 {
		return cfgErr("flush_interval", "%v must be positive", c.FlushInterval)
	}
	switch c.IO {
	case "uring", "sync", "auto":
	default:
		return cfgErr("io", "%q is not one of uring, sync, auto", c.IO)
	}
	if c.SegmentBytes < 4096 || c.SegmentBytes > 1<<31-1 {
		return cfgErr("segment_bytes", "%v is outside [4KiB, 2GiB)", c.SegmentBytes)
	}
	if c.SegmentAge <= 0 {
		return cfgErr("segment_age", "%v must be positive", c.SegmentAge)
	}
	if c.RetentionBytes < 0 {
		return cfgErr("retention_bytes", "%v must be 0 (unlimited) or positive", c.RetentionBytes)
	}
	if c.RetentionAge < 0 {
		return cfgErr("retention_age", "%v must be 0 (forever) or positive", c.RetentionAge)
	}
	if c.ShutdownTimeout <= 0 {
		return cfgErr("shutdown_timeout", "%v must be positive", c.ShutdownTimeout)
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateProtocols(); err != nil {
		return err
	}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if u.Name == "" {
			return cfgErr(key+".name", "must not be empty")
		}
		if u.Password == "" {
			return cfgErr(key+".password", "must not be empty for user %q", u.Name)
		}
		for _, p := range u.Protocols {
			switch p {
			case "kafka", "amqp", "mqtt", "rocketmq":
				if !authEnforced(p) {
					return cfgErr(key+".protocols", "%s does not authenticate clients yet (users apply to %s)",
						p, strings.Join(AuthProtocols, ", "))
				}
			default:
				return cfgErr(key+".protocols", "%q is not one of kafka, amqp, mqtt, rocketmq", p)
			}
		}
	}
	return nil
}

func (c *Config) validateListeners() error {
	used := map[string]string{}
	for _, l := range c.Listeners.All() {
		key := "listeners." + l.Name
		if !l.Enabled() {
			if l.TLS() {
				return cfgErr(key+".addr", "is empty but tls_cert/tls_key are set")
			}
			continue
		}
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			return cfgErr(key+".addr", "%q is not host:port: %v", l.Addr, err)
		}
		if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			return cfgErr(key+".addr", "%q: bad host %q", l.Addr, host)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return cfgErr(key+".addr", "%q: port %q is not a number in 0..65535", l.Addr, port)
		}
		if n != 0 {
			norm := net.JoinHostPort(host, port)
			if prev, ok := used[norm]; ok {
				return cfgErr(key+".addr", "%q is already used by listeners.%s", l.Addr, prev)
			}
			used[norm] = l.Name
		}
		mustTLS := strings.HasSuffix(l.Name, "_tls")
		if mustTLS || l.TLS() {
			if l.TLSCert == "" {
				return cfgErr(key+".tls_cert", "required for a TLS listener")
			}
			if l.TLSKey == "" {
				return cfgErr(key+".tls_key", "required for a TLS listener")
			}
			for k, f := range map[string]string{".tls_cert": l.TLSCert, ".tls_key": l.TLSKey} {
				if _, err := os.Stat(f); err != nil {
					return cfgErr(key+k, "%v", err)
				}
			}
		}
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func (c *Config) validateLimits() error {
	l := &c.Limits
	if l.ConnectionsMax < 1 {
		return cfgErr("limits.connections_max", "%d must be at least 1", l.ConnectionsMax)
	}
	frames := []struct {
		key      string
		v        Bytes
		min, max Bytes
	}{
		{"limits.kafka_frame_bytes_max", l.KafkaFrameBytesMax, 1 << 10, 1<<31 - 1},
		// AMQP frame_max: 4096 is the protocol minimum, 2^32-1 its maximum.
		{"limits.amqp_frame_bytes_max", l.AMQPFrameBytesMax, 4096, 1<<32 - 1},
		// MQTT remaining length is at most 268,435,455 (+5 header bytes).
		{"limits.mqtt_packet_bytes_max", l.MQTTPacketBytesMax, 64, 268435460},
		{"limits.rocketmq_frame_bytes_max", l.RocketMQFrameBytesMax, 1 << 10, 1<<31 - 1},
		{"limits.outbound_high_water_bytes", l.OutboundHighWaterBytes, 4 << 10, 1 << 40},
	}
	for _, f := range frames {
		if f.v < f.min || f.v > f.max {
			return cfgErr(f.key, "%v is outside [%v, %v]", f.v, f.min, f.max)
		}
	}
	if l.MemoryHighWaterBytes < 16<<20 {
		return cfgErr("limits.memory_high_water_bytes", "%v is below 16MiB", l.MemoryHighWaterBytes)
	}
	if l.MemoryLowWaterBytes <= 0 || l.MemoryLowWaterBytes >= l.MemoryHighWaterBytes {
		return cfgErr("limits.memory_low_water_bytes", "%v must be positive and below memory_high_water_bytes (%v)",
			l.MemoryLowWaterBytes, l.MemoryHighWaterBytes)
	}
	if l.DiskFreeBytesMin < 0 {
		return cfgErr("limits.disk_free_bytes_min", "%v must not be negative", l.DiskFreeBytesMin)
	}
	return nil
}

func (c *Config) validateProtocols() error {
	if c.Kafka.DefaultPartitions < 1 || c.Kafka.DefaultPartitions > 10000 {
		return cfgErr("kafka.default_partitions", "%d is outside [1, 10000]", c.Kafka.DefaultPartitions)
	}
	if c.Kafka.MessageBytesMax < 1<<10 || c.Kafka.MessageBytesMax > c.Limits.KafkaFrameBytesMax {
		return cfgErr("kafka.message_bytes_max", "%v is outside [1KiB, limits.kafka_frame_bytes_max=%v]",
			c.Kafka.MessageBytesMax, c.Limits.KafkaFrameBytesMax)
	}
	if err := validAdvertised("kafka.advertised_addr", c.Kafka.AdvertisedAddr); err != nil {
		return err
	}
	if c.Kafka.GroupInitialRebalanceDelay < 0 {
		return cfgErr("kafka.group_initial_rebalance_delay", "%v must not be negative", c.Kafka.GroupInitialRebalanceDelay)
	}
	if c.AMQP.ChannelsMax < 1 || c.AMQP.ChannelsMax > 65535 {
		return cfgErr("amqp.channels_max", "%d is outside [1, 65535]", c.AMQP.ChannelsMax)
	}
	if c.AMQP.Heartbeat < 0 || c.AMQP.Heartbeat > 65535*time.Second {
		return cfgErr("amqp.heartbeat", "%v is outside [0, 65535s]", c.AMQP.Heartbeat)
	}
	if c.AMQP.QueuesMax < 1 {
		return cfgErr("amqp.queues_max", "%d must be at least 1", c.AMQP.QueuesMax)
	}
	if c.MQTT.QoSMax < 0 || c.MQTT.QoSMax > 2 {
		return cfgErr("mqtt.qos_max", "%d is not 0, 1 or 2", c.MQTT.QoSMax)
	}
	if c.MQTT.SessionExpiryMax < 0 || c.MQTT.SessionExpiryMax > (1<<32-1)*time.Second {
		return cfgErr("mqtt.session_expiry_max", "%v is outside [0, 4294967295s]", c.MQTT.SessionExpiryMax)
	}
	if c.MQTT.KeepAliveMax < 0 || c.MQTT.KeepAliveMax > 65535*time.Second {
		return cfgErr("mqtt.keep_alive_max", "%v is outside [0, 65535s]", c.MQTT.KeepAliveMax)
	}
	if c.MQTT.InflightMessagesMax < 1 || c.MQTT.InflightMessagesMax > 65535 {
		return cfgErr("mqtt.inflight_messages_max", "%d is outside [1, 65535]", c.MQTT.InflightMessagesMax)
	}
	if c.MQTT.SessionsMax < 1 {
		return cfgErr("mqtt.sessions_max", "%d must be at least 1", c.MQTT.SessionsMax)
	}
	if c.RocketMQ.QueuesPerTopic < 1 || c.RocketMQ.QueuesPerTopic > 1024 {
		return cfgErr("rocketmq.queues_per_topic", "%d is outside [1, 1024]", c.RocketMQ.QueuesPerTopic)
	}
	if c.RocketMQ.ClusterName == "" {
		return cfgErr("rocketmq.cluster_name", "must not be empty")
	}
	if c.RocketMQ.BrokerName == "" {
		return cfgErr("rocketmq.broker_name", "must not be empty")
	}
	if err := validAdvertised("rocketmq.advertised_addr", c.RocketMQ.AdvertisedAddr); err != nil {
		return err
	}
	if c.RocketMQ.MessageBytesMax < 1<<10 || c.RocketMQ.MessageBytesMax > c.Limits.RocketMQFrameBytesMax {
		return cfgErr("rocketmq.message_bytes_max", "%v is outside [1KiB, limits.rocketmq_frame_bytes_max=%v]",
			c.RocketMQ.MessageBytesMax, c.Limits.RocketMQFrameBytesMax)
	}
	if _, err := c.RocketMQ.DelayLevelDurations(); err != nil {
		return cfgErr("rocketmq.delay_levels", "%v", err)
	}
	if c.RocketMQ.TransactionCheckInterval <= 0 {
		return cfgErr("rocketmq.transaction_check_interval", "%v must be positive", c.RocketMQ.TransactionCheckInterval)
	}
	return nil
}

func validAdvertised(key, addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return cfgErr(key, "%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return cfgErr(key, "%q: port %q is not a number in 1..65535", addr, port)
	}
	return nil
}

// DelayLevelDurations parses DelayLevels ("1s 5s 10s 30s 1m ... 2h"); the
// RocketMQ suffix "d" (days) is accepted as well.
func (r *RocketMQConfig) DelayLevelDurations() ([]time.Duration, error) {
	fields := strings.Fields(r.DelayLevels)
	if len(fields) == 0 {
		return nil, errors.New("no levels")
	}
	out := make([]time.Duration, len(fields))
	for i, f := range fields {
		var d time.Duration
		var err error
		if n, ok := strings.CutSuffix(f, "d"); ok {
			var days int
			days, err = strconv.Atoi(n)
			d = time.Duration(days) * 24 * time.Hour
		} else {
			d, err = time.ParseDuration(f)
		}
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("level %d %q is not a positive duration", i+1, f)
		}
		out[i] = d
	}
	return out, nil
}

// AuthConfigured reports whether protocol ("kafka", "amqp", "mqtt",
// "rocketmq") authenticates clients: its server enforces users
// (AuthProtocols) and at least one user may log in over it.
func (c *Config) AuthConfigured(protocol string) bool {
	if !authEnforced(protocol) {
		return false
	}
	for _, u := range c.Users {
		if len(u.Protocols) == 0 {
			return true
		}
		for _, p := range u.Protocols {
			if p == protocol {
				return true
			}
		}
	}
	return false
}

// Unauthenticated returns the enabled protocol listeners bound to a
// non-loopback address for a protocol without configured users. Serve logs
// a warning per entry (the shipped config binds loopback for that reason).
func (c *Config) Unauthenticated() []NamedListener {
	var out []NamedListener
	for _, l := range c.Listeners.All() {
		if !l.Enabled() || l.Protocol == "http" || c.AuthConfigured(l.Protocol) {
			continue
		}
		host, _, err := net.SplitHostPort(l.Addr)
		if err != nil {
			continue
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Bytes is a byte count. In TOML and on the command line it is an integer
// or a string with a unit: "64KiB", "16MiB", "1GiB", "1TiB" (also KB, MB,
// GB, TB as powers of 1000, and k/m/g/t as powers of 1024).
type Bytes int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes parses a Bytes value.
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad byte size %q", s)
	}
	if n != 0 && (n*mult)/n != mult {
		return 0, fmt.Errorf("byte size %q overflows", s)
	}
	return Bytes(n * mult), nil
}

// String formats b with the largest exact binary unit.
func (b Bytes) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.m == 0 {
			return strconv.FormatInt(int64(b)/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalTOML implements toml.Unmarshaler.
func (b *Bytes) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*b = Bytes(x)
		return nil
	case string:
		n, err := ParseBytes(x)
		if err != nil {
			return err
		}
		*b = n
		return nil
	}
	return fmt.Errorf("byte size must be an integer or a string like \"16MiB\", not %T", v)
}

// MarshalText implements encoding.TextMarshaler.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Set implements flag.Value.
func (b *Bytes) Set(s string) error {
	n, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = n
	return nil
}

// flag binding ----------------------------------------------------------------

type listenerFlag struct {
	flag, key string
	l         func(*Config) *Listener
}

var listenerFlags = []listenerFlag{
	{"kafka", "kafka", func(c *Config) *Listener { return &c.Listeners.Kafka }},
	{"kafka-tls", "kafka_tls", func(c *Config) *Listener { return &c.Listeners.KafkaTLS }},
	{"amqp", "amqp", func(c *Config) *Listener { return &c.Listeners.AMQP }},
	{"amqp-tls", "amqp_tls", func(c *Config) *Listener { return &c.Listeners.AMQPTLS }},
	{"mqtt", "mqtt", func(c *Config) *Listener { return &c.Listeners.MQTT }},
	{"mqtt-tls", "mqtt_tls", func(c *Config) *Listener { return &c.Listeners.MQTTTLS }},
	{"mqtt-ws", "mqtt_ws", func(c *Config) *Listener { return &c.Listeners.MQTTWS }},
	{"rocketmq-namesrv", "rocketmq_namesrv", func(c *Config) *Listener { return &c.Listeners.RocketMQNamesrv }},
	{"rocketmq-broker", "rocketmq_broker", func(c *Config) *Listener { return &c.Listeners.RocketMQBroker }},
	{"http", "http", func(c *Config) *Listener { return &c.Listeners.HTTP }},
}

// BindFlags defines one flag per setting on fs, writing into c. Listener
// flags take the address (an empty value disables the listener); TLS files
// are --<listener>-tls-cert / --<listener>-tls-key.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory (data_dir)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (log_level)")
	fs.StringVar(&c.Flush, "flush", c.Flush, "sync (ack after fdatasync) or async (flush)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "background flush interval under flush=async (flush_interval)")
	fs.StringVar(&c.IO, "io", c.IO, "writer: uring, sync or auto (io)")
	fs.Var(&c.SegmentBytes, "segment-bytes", "roll segments at this size (segment_bytes)")
	fs.DurationVar(&c.SegmentAge, "segment-age", c.SegmentAge, "roll segments at this age (segment_age)")
	fs.Var(&c.RetentionBytes, "retention-bytes", "per-partition retention by size, 0 unlimited (retention_bytes)")
	fs.DurationVar(&c.RetentionAge, "retention-age", c.RetentionAge, "retention by age, 0 forever (retention_age)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful stop bound (shutdown_timeout)")
	for _, lf := range listenerFlags {
		l := lf.l(c)
		fs.StringVar(&l.Addr, lf.flag, l.Addr, "listen address, empty disables (listeners."+lf.key+".addr)")
		fs.StringVar(&l.TLSCert, lf.flag+"-tls-cert", l.TLSCert, "PEM certificate (listeners."+lf.key+".tls_cert)")
		fs.StringVar(&l.TLSKey, lf.flag+"-tls-key", l.TLSKey, "PEM key (listeners."+lf.key+".tls_key)")
	}
	fs.IntVar(&c.Limits.ConnectionsMax, "connections-max", c.Limits.ConnectionsMax, "client connections (limits.connections_max)")
	fs.Var(&c.Limits.KafkaFrameBytesMax, "kafka-frame-bytes-max", "largest Kafka request (limits.kafka_frame_bytes_max)")
	fs.Var(&c.Limits.AMQPFrameBytesMax, "amqp-frame-bytes-max", "AMQP frame_max (limits.amqp_frame_bytes_max)")
	fs.Var(&c.Limits.MQTTPacketBytesMax, "mqtt-packet-bytes-max", "largest MQTT packet (limits.mqtt_packet_bytes_max)")
	fs.Var(&c.Limits.RocketMQFrameBytesMax, "rocketmq-frame-bytes-max", "largest RocketMQ frame (limits.rocketmq_frame_bytes_max)")
	fs.Var(&c.Limits.OutboundHighWaterBytes, "outbound-high-water-bytes", "per-connection output mark (limits.outbound_high_water_bytes)")
	fs.Var(&c.Limits.MemoryHighWaterBytes, "memory-high-water-bytes", "pause publishers above (limits.memory_high_water_bytes)")
	fs.Var(&c.Limits.MemoryLowWaterBytes, "memory-low-water-bytes", "resume publishers below (limits.memory_low_water_bytes)")
	fs.Var(&c.Limits.DiskFreeBytesMin, "disk-free-bytes-min", "refuse publishes below this free space (limits.disk_free_bytes_min)")
	fs.BoolVar(&c.Kafka.AutoCreateTopics, "kafka-auto-create-topics", c.Kafka.AutoCreateTopics, "kafka.auto_create_topics")
	fs.IntVar(&c.Kafka.DefaultPartitions, "kafka-default-partitions", c.Kafka.DefaultPartitions, "kafka.default_partitions")
	fs.StringVar(&c.Kafka.AdvertisedAddr, "kafka-advertised-addr", c.Kafka.AdvertisedAddr, "kafka.advertised_addr")
	fs.BoolVar(&c.RocketMQ.AutoCreateTopics, "rocketmq-auto-create-topics", c.RocketMQ.AutoCreateTopics, "rocketmq.auto_create_topics")
	fs.IntVar(&c.RocketMQ.QueuesPerTopic, "rocketmq-queues-per-topic", c.RocketMQ.QueuesPerTopic, "rocketmq.queues_per_topic")
	fs.StringVar(&c.RocketMQ.AdvertisedAddr, "rocketmq-advertised-addr", c.RocketMQ.AdvertisedAddr, "rocketmq.advertised_addr")
}

// ParseFlags parses args (without the program and subcommand names): the
// file named by --config (if any) is loaded over Default, then every flag
// given on the command line overrides it. The result is validated.
func ParseFlags(name string, args []string, output io.Writer) (Config, error) {
	return ParseFlagsExtra(name, args, output, nil)
}

// ParseFlagsExtra is ParseFlags with extra, non-config flags defined by
// extra (for example doctor's --root); they are parsed in the same pass.
func ParseFlagsExtra(name string, args []string, output io.Writer, extra func(fs *flag.FlagSet)) (Config, error) {
	scratch := Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if output != nil {
		fs.SetOutput(output)
	}
	var path string
	fs.StringVar(&path, "config", "", "TOML config file; flags override it")
	scratch.BindFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	cfg := Default()
	if path != "" {
		if err := cfg.loadFile(path); err != nil {
			return Config{}, err
		}
	}
	// Re-apply the flags that were given, in name order, onto the loaded file.
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	over := flag.NewFlagSet(name, flag.ContinueOnError)
	over.SetOutput(io.Discard)
	over.String("config", "", "")
	cfg.BindFlags(over)
	for _, n := range names {
		if over.Lookup(n) == nil {
			continue // an extra flag
		}
		if err := over.Set(n, set[n]); err != nil {
			return Config{}, fmt.Errorf("%w: --%s: %v", ErrConfig, n, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("%s: %w", path, err)
		}
		return Config{}, err
	}
	return cfg, nil
}

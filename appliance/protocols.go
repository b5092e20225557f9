package appliance

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"quartet/engine"
	"quartet/engine/group"
	"quartet/netpoll"
	"quartet/wire/amqp"
	"quartet/wire/kafka"
	"quartet/wire/mqtt"
	"quartet/wire/rocketmq"
)

// startProtocols builds the wire server of every protocol that has an
// enabled listener and collects its netpoll listeners.
func startProtocols(eng *engine.Engine, cfg *Config, logger *slog.Logger) (*protocolSet, error) {
	p := &protocolSet{}
	ls := &cfg.Listeners
	fail := func(err error) (*protocolSet, error) {
		p.close(logger)
		return nil, err
	}

	if ls.Kafka.Enabled() || ls.KafkaTLS.Enabled() {
		kc := kafka.Config{
			DisableAutoCreate: !cfg.Kafka.AutoCreateTopics,
			DefaultPartitions: cfg.Kafka.DefaultPartitions,
			FrameBytesMax:     int(cfg.Limits.KafkaFrameBytesMax),
			MessageBytesMax:   int(cfg.Kafka.MessageBytesMax),
			Group:             group.Config{InitialRebalanceDelay: cfg.Kafka.GroupInitialRebalanceDelay},
		}
		if cfg.Kafka.AdvertisedAddr != "" {
			host, port, err := splitHostPort(cfg.Kafka.AdvertisedAddr)
			if err != nil {
				return fail(fmt.Errorf("%w: kafka.advertised_addr: %v", ErrConfig, err))
			}
			kc.AdvertisedHost, kc.AdvertisedPort = host, port
		}
		srv, err := kafka.New(eng, kc, logger)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, srv.Close)
		p.countMessages("kafka", srv, logger)
		if err := p.addListener("kafka", ls.Kafka, srv.Protocol(), nil); err != nil {
			return fail(err)
		}
		if err := p.addListener("kafka_tls", ls.KafkaTLS, srv.Protocol(), nil); err != nil {
			return fail(err)
		}
	}

	if ls.AMQP.Enabled() || ls.AMQPTLS.Enabled() {
		users := map[string]string{}
		for _, u := range cfg.Users {
			if servesProtocol(u, "amqp") {
				users[u.Name] = u.Password
			}
		}
		srv, err := amqp.New(eng, amqp.Config{
			FrameMax:   int(cfg.Limits.AMQPFrameBytesMax),
			ChannelMax: cfg.AMQP.ChannelsMax,
			Heartbeat:  cfg.AMQP.Heartbeat,
			Users:      users,
			// connection.blocked while the data directory's free space is low.
			DataDir:          cfg.DataDir,
			DiskFreeBytesMin: int64(cfg.Limits.DiskFreeBytesMin),
		}, logger)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, srv.Close)
		p.countMessages("amqp", srv, logger)
		p.onMemoryAlarm = append(p.onMemoryAlarm, func(on bool) { srv.SetBlocked("memory", on) })
		if err := p.addListener("amqp", ls.AMQP, srv.Protocol(), nil); err != nil {
			return fail(err)
		}
		if err := p.addListener("amqp_tls", ls.AMQPTLS, srv.Protocol(), nil); err != nil {
			return fail(err)
		}
	}

	if ls.MQTT.Enabled() || ls.MQTTTLS.Enabled() || ls.MQTTWS.Enabled() {
		if cfg.MQTT.QoSMax != 2 || !cfg.MQTT.RetainAvailable {
			return fail(fmt.Errorf("%w: mqtt.qos_max below 2 and retain_available = false are not served yet", ErrConfig))
		}
		srv, err := mqtt.New(eng, mqtt.Config{
			PacketBytesMax:      int(cfg.Limits.MQTTPacketBytesMax),
			InflightMessagesMax: cfg.MQTT.InflightMessagesMax,
			KeepAliveMax:        uint16(min(cfg.MQTT.KeepAliveMax/time.Second, 65535)),
			SessionExpiryMax:    uint32(min(cfg.MQTT.SessionExpiryMax/time.Second, 1<<32-1)),
		}, logger)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, srv.Close)
		p.countMessages("mqtt", srv, logger)
		p.mqtt = srv
		for _, l := range []struct {
			name string
			l    Listener
			ws   *netpoll.WebSocketConfig
		}{
			{"mqtt", ls.MQTT, nil},
			{"mqtt_tls", ls.MQTTTLS, nil},
			{"mqtt_ws", ls.MQTTWS, &netpoll.WebSocketConfig{Path: "/mqtt", Subprotocols: []string{"mqtt"}}},
		} {
			if err := p.addListener(l.name, l.l, srv.Protocol(), l.ws); err != nil {
				return fail(err)
			}
		}
	}

	if ls.RocketMQNamesrv.Enabled() || ls.RocketMQBroker.Enabled() {
		srv, err := rocketmq.New(eng, rocketmq.Config{
			BrokerAddr:               cfg.RocketMQ.AdvertisedAddr,
			ClusterName:              cfg.RocketMQ.ClusterName,
			BrokerName:               cfg.RocketMQ.BrokerName,
			AutoCreateTopics:         cfg.RocketMQ.AutoCreateTopics,
			QueuesPerTopic:           cfg.RocketMQ.QueuesPerTopic,
			MessageBytesMax:          int(cfg.RocketMQ.MessageBytesMax),
			DelayLevels:              cfg.RocketMQ.DelayLevels,
			TransactionCheckInterval: cfg.RocketMQ.TransactionCheckInterval,
			// The commit log is retained as topics are (whole segments).
			RetentionAge:   cfg.RetentionAge,
			RetentionBytes: int64(cfg.RetentionBytes),
		}, logger)
		if err != nil {
			return fail(err)
		}
		p.closers = append(p.closers, srv.Close)
		p.countMessages("rocketmq", srv, logger)
		if err := p.addListener("rocketmq_namesrv", ls.RocketMQNamesrv, srv.NamesrvProtocol(), nil); err != nil {
			return fail(err)
		}
		if err := p.addListener("rocketmq_broker", ls.RocketMQBroker, srv.BrokerProtocol(), nil); err != nil {
			return fail(err)
		}
		if cfg.RocketMQ.AdvertisedAddr == "" {
			p.onBound = append(p.onBound, func(bound map[string]string) {
				if a, ok := bound["rocketmq_broker"]; ok {
					srv.SetBrokerAddr(a)
				}
			})
		}
	}
	return p, nil
}

// servesProtocol reports whether user u may log in over proto.
func servesProtocol(u User, proto string) bool {
	if len(u.Protocols) == 0 {
		return true
	}
	for _, p := range u.Protocols {
		if strings.EqualFold(p, proto) {
			return true
		}
	}
	return false
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, port, nil
}

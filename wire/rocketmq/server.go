package rocketmq

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"quartet/engine"
	"quartet/engine/commitlog"
	"quartet/engine/delay"
	"quartet/engine/txn"
	"quartet/netpoll"
)

// Request codes served (RequestCode.java).
const (
	codeSendMessage             = 10
	codePullMessage             = 11
	codeQueryMessage            = 12
	codeQueryConsumerOffset     = 14
	codeUpdateConsumerOffset    = 15
	codeUpdateCreateTopic       = 17
	codeSearchOffsetByTime      = 29
	codeGetMaxOffset            = 30
	codeGetMinOffset            = 31
	codeGetEarliestMsgStoretime = 32
	codeViewMessageByID         = 33
	codeHeartBeat               = 34
	codeUnregisterClient        = 35
	codeConsumerSendMsgBack     = 36
	codeEndTransaction          = 37
	codeGetConsumerListByGroup  = 38
	codeCheckTransactionState   = 39
	codeNotifyConsumerIDs       = 40
	codeLockBatchMQ             = 41
	codeUnlockBatchMQ           = 42
	codeGetRouteInfoByTopic     = 105
	codeGetBrokerClusterInfo    = 106
	codeGetAllTopicListFromNS   = 206
	codeSendMessageV2           = 310
	codeSendBatchMessage        = 320
)

// Response codes (ResponseCode.java).
const (
	respSuccess               = 0
	respSystemError           = 1
	respSystemBusy            = 2
	respNotSupported          = 3
	respServiceNotAvailable   = 14
	respNoPermission          = 16
	respTopicNotExist         = 17
	respMessageIllegal        = 13
	respPullNotFound          = 19
	respPullRetryImmediately  = 20
	respPullOffsetMoved       = 21
	respQueryNotFound         = 22
	respSubscriptionNotExist  = 24
	respSubscriptionNotLatest = 25
)

// Config configures the RocketMQ name server and broker.
type Config struct {
	// BrokerAddr is the broker address routes advertise ("host:port"). The
	// appliance sets it with SetBrokerAddr once the broker listener is bound.
	BrokerAddr  string
	ClusterName string // default "DefaultCluster"
	BrokerName  string // default "quartet"
	// AutoCreateTopics creates unknown topics on first send or route lookup.
	AutoCreateTopics bool
	QueuesPerTopic   int // queues of auto-created topics (default 4)
	MessageBytesMax  int // largest message body (default 4 MiB)
	// DelayLevels is messageDelayLevel (default "1s 5s 10s 30s 1m 2m 3m 4m 5m
	// 6m 7m 8m 9m 10m 20m 30m 1h 2h").
	DelayLevels string
	// TransactionCheckInterval between check-backs of undecided half
	// messages (default 1 min); TransactionTimeout is how old a half message
	// must be before its first check (default 6 s); TransactionCheckMax
	// bounds the checks before the half message is discarded (default 15).
	TransactionCheckInterval time.Duration
	TransactionTimeout       time.Duration
	TransactionCheckMax      int
	// LockExpiry is how long a LOCK_BATCH_MQ lock lives unless renewed
	// (default 60 s).
	LockExpiry time.Duration
	// ClientExpiry drops a client that has sent no heartbeat for this long
	// (default 120 s).
	ClientExpiry time.Duration
	// RetentionAge and RetentionBytes bound the commit log (0: keep
	// everything); whole segments go, never the active one. When either is
	// set the commit log rolls 1 GiB segments (engine/commitlog.Config).
	RetentionAge   time.Duration
	RetentionBytes int64
}

// queuesMax bounds a topic's queues.
const queuesMax = 1024

// DefaultConfig returns the defaults (auto-create on, 4 queues per topic).
func DefaultConfig() Config {
	return Config{AutoCreateTopics: true, QueuesPerTopic: 4}
}

const defaultDelayLevels = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"

func (c *Config) fill() {
	if c.ClusterName == "" {
		c.ClusterName = "DefaultCluster"
	}
	if c.BrokerName == "" {
		c.BrokerName = "quartet"
	}
	if c.QueuesPerTopic <= 0 {
		c.QueuesPerTopic = 4
	}
	if c.QueuesPerTopic > queuesMax {
		c.QueuesPerTopic = queuesMax
	}
	if c.MessageBytesMax <= 0 {
		c.MessageBytesMax = 4 << 20
	}
	if c.DelayLevels == "" {
		c.DelayLevels = defaultDelayLevels
	}
	if c.TransactionCheckInterval <= 0 {
		c.TransactionCheckInterval = time.Minute
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 6 * time.Second
	}
	if c.TransactionCheckMax <= 0 {
		c.TransactionCheckMax = 15
	}
	if c.LockExpiry <= 0 {
		c.LockExpiry = 60 * time.Second
	}
	if c.ClientExpiry <= 0 {
		c.ClientExpiry = 120 * time.Second
	}
}

// parseDelayLevels parses "1s 5s 1m 2h ..." (units s, m, h, d).
func parseDelayLevels(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Fields(s) {
		if len(f) < 2 {
			return nil, fmt.Errorf("rocketmq: delay level %q", f)
		}
		n, err := strconv.Atoi(f[:len(f)-1])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("rocketmq: delay level %q", f)
		}
		var unit time.Duration
		switch f[len(f)-1] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		default:
			return nil, fmt.Errorf("rocketmq: delay level %q", f)
		}
		out = append(out, time.Duration(n)*unit)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("rocketmq: no delay levels")
	}
	return out, nil
}

// Internal topics.
const (
	topicDefault  = "TBW102"
	topicSchedule = "SCHEDULE_TOPIC_XXXX"
	topicHalf     = "RMQ_SYS_TRANS_HALF_TOPIC"
	prefixRetry   = "%RETRY%"
	prefixDLQ     = "%DLQ%"
)

// Server is the RocketMQ name server and broker over one engine.
type Server struct {
	e   *engine.Engine
	cfg Config
	log *slog.Logger

	brokerAddr atomic.Pointer[string]
	storeHost  atomic.Pointer[hostPort]

	ns, br *netpoll.Protocol

	cl    *commitlog.Store
	reg   registry
	locks lockTable
	offs  offsetStore

	delayLevels []time.Duration
	delay       *delay.Scheduler
	txn         *txn.Store

	msgsIn  atomic.Uint64 // messages accepted from producers
	msgsOut atomic.Uint64 // messages delivered to consumers

	opaque atomic.Int32
	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup

	createMu sync.Mutex
}

// New builds a Server over e. Its two protocols are served by the appliance
// (NamesrvProtocol on 9876, BrokerProtocol on 10911).
func New(e *engine.Engine, cfg Config, logger *slog.Logger) (*Server, error) {
	cfg.fill()
	if logger == nil {
		logger = slog.Default()
	}
	levels, err := parseDelayLevels(cfg.DelayLevels)
	if err != nil {
		return nil, err
	}
	s := &Server{e: e, cfg: cfg, log: logger.With("proto", "rocketmq"), delayLevels: levels, done: make(chan struct{})}
	s.SetBrokerAddr(cfg.BrokerAddr)
	s.reg.init()
	s.locks.init()
	s.offs.init(e.Meta())
	s.cl, err = commitlog.Open(e, commitlog.Config{RetentionAge: cfg.RetentionAge, RetentionBytes: cfg.RetentionBytes}, s.log)
	if err != nil {
		return nil, err
	}
	if _, ok := s.cl.Topic(topicDefault); !ok {
		if _, err := s.cl.CreateTopic(topicDefault, cfg.QueuesPerTopic); err != nil {
			s.cl.Close()
			return nil, fmt.Errorf("rocketmq: create %s: %w", topicDefault, err)
		}
	}
	s.delay, err = delay.Open(e, s.cl, delay.Config{Topic: topicSchedule, Levels: levels}, s.log)
	if err != nil {
		s.cl.Close()
		return nil, err
	}
	s.txn, err = txn.Open(e, s.cl, txn.Config{
		Topic:         topicHalf,
		CheckInterval: cfg.TransactionCheckInterval,
		Timeout:       cfg.TransactionTimeout,
		CheckMax:      cfg.TransactionCheckMax,
	}, s.checkTransaction, s.log)
	if err != nil {
		s.delay.Close()
		s.cl.Close()
		return nil, err
	}
	s.ns = &netpoll.Protocol{Name: "rocketmq-namesrv", Framer: netpoll.LengthPrefixed32(frameBytesMax), FrameBytesNeeded: netpoll.LengthPrefixed32Needed,
		FrameBytesMax: frameBytesMax, Handler: &handler{s: s, broker: false}}
	s.br = &netpoll.Protocol{Name: "rocketmq", Framer: netpoll.LengthPrefixed32(frameBytesMax), FrameBytesNeeded: netpoll.LengthPrefixed32Needed,
		FrameBytesMax: frameBytesMax, Handler: &handler{s: s, broker: true}, Publisher: true}
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// MessageCounts returns the messages accepted from producers (each message
// of a batch counts) and the messages delivered to consumers in pull
// responses, since New.
func (s *Server) MessageCounts() (in, out uint64) { return s.msgsIn.Load(), s.msgsOut.Load() }

// CommitLog is the store under the broker (for statistics and tests).
func (s *Server) CommitLog() *commitlog.Store { return s.cl }

// NamesrvProtocol is the name server (port 9876).
func (s *Server) NamesrvProtocol() *netpoll.Protocol { return s.ns }

// BrokerProtocol is the broker (port 10911).
func (s *Server) BrokerProtocol() *netpoll.Protocol { return s.br }

// Protocol is BrokerProtocol (the netpoll contract's single-protocol name).
func (s *Server) Protocol() *netpoll.Protocol { return s.br }

// SetBrokerAddr sets the broker address advertised in routes and encoded in
// message ids. An unspecified host (":10911", "0.0.0.0:10911") is replaced by
// the first non-loopback IPv4 address of the machine.
func (s *Server) SetBrokerAddr(addr string) {
	if addr == "" {
		addr = "127.0.0.1:10911"
	}
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort(localIPv4(), port)
	}
	s.brokerAddr.Store(&addr)
	hp := parseHostPort(addr)
	s.storeHost.Store(&hp)
}

// BrokerAddr is the advertised broker address.
func (s *Server) BrokerAddr() string { return *s.brokerAddr.Load() }

func localIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// Close stops timers and background work. Connections are closed by netpoll.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	s.offs.flush(s.logMetaErr, func() {})
	s.txn.Close()
	s.delay.Close()
	return s.cl.Close()
}

// janitor expires clients without heartbeats and stale locks.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.offs.flush(s.logMetaErr, nil)
			if n++; n%5 == 0 {
				s.reg.expire(s, now.Add(-s.cfg.ClientExpiry))
				s.locks.expire(now)
			}
		}
	}
}

// topic returns the topic, creating it when allowed. It may block briefly
// (a catalog write): call it off the loop.
func (s *Server) topic(name string, create bool, queues int) (*commitlog.Topic, error) {
	if t, ok := s.cl.Topic(name); ok {
		return t, nil
	}
	if !create {
		return nil, errTopicNotExist
	}
	if !validTopic(name) {
		return nil, fmt.Errorf("%w: topic name %q", errIllegal, name)
	}
	if queues <= 0 {
		queues = s.cfg.QueuesPerTopic
	}
	if queues > queuesMax {
		queues = queuesMax
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if t, ok := s.cl.Topic(name); ok {
		return t, nil
	}
	t, err := s.cl.CreateTopic(name, queues)
	if err == nil {
		s.log.Info("topic created", "topic", name, "queues", queues)
	}
	return t, err
}

var (
	errTopicNotExist = fmt.Errorf("rocketmq: topic not exist")
	errIllegal       = fmt.Errorf("rocketmq: illegal")
)

// validTopic follows TopicValidator: [%|a-zA-Z0-9_-]+, at most 127 bytes.
func validTopic(t string) bool {
	if t == "" || len(t) > 127 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c == '%' || c == '|' || c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

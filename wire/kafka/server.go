package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/engine"
	"quartet/engine/group"
	"quartet/engine/producer"
	"quartet/netpoll"
)

// ErrUnsupported reports an API key or version we do not serve.
var ErrUnsupported = errors.New("kafka: unsupported api key or version")

// Defaults of Config.
const (
	FrameBytesMaxDefault     = 100 << 20 // socket.request.max.bytes
	DefaultPartitionsDefault = 1
	idleTimeoutDefault       = 10 * time.Minute // connections.max.idle.ms
	topicNameBytesMax        = 249
)

// Config configures the Kafka listener's behaviour.
type Config struct {
	// AdvertisedHost/Port are what Metadata and FindCoordinator return. Empty
	// / zero: the address the client connected to (Conn.LocalAddr).
	AdvertisedHost string
	AdvertisedPort int
	// DisableAutoCreate turns off creating topics on first Metadata/Produce
	// (auto.create.topics.enable=false).
	DisableAutoCreate bool
	// DefaultPartitions is num.partitions for auto-created topics (1).
	DefaultPartitions int
	// MessageBytesMax is message.max.bytes: the largest record batch set
	// accepted per partition (0: no limit beyond the topic's
	// max.message.bytes and the segment store's).
	MessageBytesMax int
	// FrameBytesMax is socket.request.max.bytes (100 MiB).
	FrameBytesMax int
	// NodeID is this broker's id (0).
	NodeID int32
	// ClusterID is returned by Metadata (default "quartet").
	ClusterID string
	// Group tunes the consumer-group coordinator.
	Group group.Config
	// IdleTimeout closes idle connections (connections.max.idle.ms, 10 min).
	IdleTimeout time.Duration
}

// Server is the Kafka protocol on top of one engine.
type Server struct {
	e      *engine.Engine
	cfg    Config
	log    *slog.Logger
	groups *group.Coordinator
	prod   *producer.Manager
	proto  netpoll.Protocol

	// Records in (acknowledged produce) and out (served by fetches), each on
	// its own cache line: every loop and the writer goroutine add to them.
	_       [64]byte
	msgsIn  atomic.Uint64
	_       [56]byte
	msgsOut atomic.Uint64
	_       [56]byte
}

// MessageCounts reports the records accepted from producers (in) and the
// records served to consumers (out) since New.
//
// in counts, from the batch headers, the records of every batch whose append
// completed (under flush=sync: after fdatasync), for acks 0, 1 and -1 alike.
// A batch refused (corrupt, too large, unknown partition, idempotence error)
// or answered as a duplicate of an earlier one is not counted.
//
// out counts the records of each partition's range a Fetch response carries,
// clipped to the fetch offset (a range starts at the batch holding it, and
// the client skips the records before it), per response, so every consumer's
// copy counts. It is counted when the response is queued, not when the last
// byte leaves the socket. The count is offset arithmetic, not a walk of the
// records: the range's EndOffset (which segment.Log.Read takes from the batch
// headers it reads to bound the range) minus the first offset served.
// Offsets in a partition are dense (no
// compaction, no transaction markers), so both are exact.
func (s *Server) MessageCounts() (in, out uint64) {
	return s.msgsIn.Load(), s.msgsOut.Load()
}

// New returns a Kafka server over e.
func New(e *engine.Engine, cfg Config, logger *slog.Logger) (*Server, error) {
	if e == nil {
		return nil, errors.New("kafka: nil engine")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = DefaultPartitionsDefault
	}
	if cfg.FrameBytesMax <= 0 {
		cfg.FrameBytesMax = FrameBytesMaxDefault
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "quartet"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = idleTimeoutDefault
	}
	s := &Server{e: e, cfg: cfg, log: logger.With("proto", "kafka")}
	s.groups = group.New(e.Meta(), cfg.Group, s.log)
	s.prod = producer.New(e, s.log)
	s.proto = netpoll.Protocol{
		Name:             "kafka",
		Framer:           netpoll.LengthPrefixed32(cfg.FrameBytesMax),
		FrameBytesNeeded: netpoll.LengthPrefixed32Needed,
		FrameBytesMax:    cfg.FrameBytesMax,
		Handler:          (*handler)(s),
		IdleTimeout:      cfg.IdleTimeout,
		Publisher:        true,
	}
	return s, nil
}

// Protocol is what the appliance hands to netpoll.
func (s *Server) Protocol() *netpoll.Protocol { return &s.proto }

// Close stops the group coordinator's timers. Connections are closed by the
// netpoll server.
func (s *Server) Close() error {
	s.groups.Close()
	return nil
}

// connState is the per-connection context.
type connState struct {
	s    *Server
	c    netpoll.Conn
	host string  // client host, for DescribeGroups
	buf  []byte  // response scratch (loop only)
	rq   request // the request being dispatched (loop only)
	// parked are long-polling fetches (loop only).
	parked []*fetchReq
}

type handler Server

func (h *handler) OnOpen(c netpoll.Conn) any {
	cs := &connState{s: (*Server)(h), c: c}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cs.host = "/" + a.IP.String()
	} else if a := c.RemoteAddr(); a != nil {
		cs.host = "/" + a.String()
	}
	return cs
}

func (h *handler) OnClose(c netpoll.Conn, err error) {
	if cs, ok := c.Context().(*connState); ok {
		cs.dropParked()
	}
}

func (h *handler) OnFrame(c netpoll.Conn, frame []byte) error {
	cs := c.Context().(*connState)
	var err error
	cs.rq, err = parseHeader(frame)
	rq := &cs.rq
	if err != nil {
		h.log.Warn("kafka bad request, closing connection", "remote", c.RemoteAddr(), "key", rq.key, "version", rq.version, "err", err)
		return err
	}
	if err := cs.dispatch(rq); err != nil {
		h.log.Warn("kafka malformed request, closing connection", "remote", c.RemoteAddr(),
			"api", kmsg.NameForKey(rq.key), "version", rq.version, "err", err)
		return err
	}
	return nil
}

func (cs *connState) dispatch(rq *request) error {
	s := cs.s
	switch rq.key {
	case keyApiVersions:
		return s.handleApiVersions(cs, rq)
	case keyProduce:
		return s.handleProduce(cs, rq)
	case keyFetch:
		return s.handleFetch(cs, rq)
	case keyListOffsets:
		return s.handleListOffsets(cs, rq)
	case keyMetadata:
		return s.handleMetadata(cs, rq)
	case keyOffsetCommit:
		return s.handleOffsetCommit(cs, rq)
	case keyOffsetFetch:
		return s.handleOffsetFetch(cs, rq)
	case keyFindCoordinator:
		return s.handleFindCoordinator(cs, rq)
	case keyJoinGroup:
		return s.handleJoinGroup(cs, rq)
	case keyHeartbeat:
		return s.handleHeartbeat(cs, rq)
	case keyLeaveGroup:
		return s.handleLeaveGroup(cs, rq)
	case keySyncGroup:
		return s.handleSyncGroup(cs, rq)
	case keyDescribeGroups:
		return s.handleDescribeGroups(cs, rq)
	case keyListGroups:
		return s.handleListGroups(cs, rq)
	case keyCreateTopics:
		return s.handleCreateTopics(cs, rq)
	case keyDeleteTopics:
		return s.handleDeleteTopics(cs, rq)
	case keyDeleteRecords:
		return s.handleDeleteRecords(cs, rq)
	case keyInitProducerID:
		return s.handleInitProducerID(cs, rq)
	case keyOffsetForLeaderEpoch:
		return s.handleOffsetForLeaderEpoch(cs, rq)
	case keyDescribeConfigs:
		return s.handleDescribeConfigs(cs, rq)
	case keyAlterConfigs:
		return s.handleAlterConfigs(cs, rq)
	case keyIncrementalAlterConfigs:
		return s.handleIncrementalAlterConfigs(cs, rq)
	case keyDescribeLogDirs:
		return s.handleDescribeLogDirs(cs, rq)
	case keyCreatePartitions:
		return s.handleCreatePartitions(cs, rq)
	case keyDeleteGroups:
		return s.handleDeleteGroups(cs, rq)
	case keyOffsetDelete:
		return s.handleOffsetDelete(cs, rq)
	case keyDescribeCluster:
		return s.handleDescribeCluster(cs, rq)
	}
	return fmt.Errorf("%w: api key %d", ErrUnsupported, rq.key)
}

// decode parses rq's body into req (a kmsg request of rq's key).
func decode(rq *request, req kmsg.Request) error {
	req.SetVersion(rq.version)
	return req.ReadFrom(rq.body)
}

// appendResponseHeader starts a response frame: size placeholder,
// correlation id and, for flexible versions (except ApiVersions, KIP-511),
// an empty tag section (response header v1).
func appendResponseHeader(dst []byte, key int16, corr int32, flex bool) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = appendInt32(dst, corr)
	if flex && key != keyApiVersions {
		dst = append(dst, 0)
	}
	return dst
}

// finishFrame patches the size prefix of a frame started at dst[start].
func finishFrame(dst []byte, start int) {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
}

func encodeResponse(dst []byte, key, version int16, corr int32, resp kmsg.Response) []byte {
	resp.SetVersion(version)
	start := len(dst)
	dst = appendResponseHeader(dst, key, corr, resp.IsFlexible())
	dst = resp.AppendTo(dst)
	finishFrame(dst, start)
	return dst
}

// writeResponse encodes resp at version and writes it now (loop only).
func (cs *connState) writeResponse(rq *request, resp kmsg.Response, version int16) {
	cs.buf = encodeResponse(cs.buf[:0], rq.key, version, rq.corr, resp)
	cs.c.Write(cs.buf)
	if cap(cs.buf) > 1<<20 {
		cs.buf = nil
	}
}

// pending is a response that completes later; its place in the connection's
// output order is reserved when the request is read.
type pending struct {
	c       netpoll.Conn
	slot    *netpoll.Slot
	key     int16
	version int16
	corr    int32
}

// later reserves rq's place in the output order (loop only).
func (cs *connState) later(rq *request) *pending {
	return &pending{c: cs.c, slot: cs.c.Reserve(), key: rq.key, version: rq.version, corr: rq.corr}
}

// respond fills the reserved slot with resp (any goroutine).
func (p *pending) respond(resp kmsg.Response) {
	b := encodeResponse(nil, p.key, p.version, p.corr, resp)
	p.fill(b)
}

// fill fills the slot with an encoded frame (any goroutine).
func (p *pending) fill(b []byte) {
	_ = p.c.Execute(func(netpoll.Conn) { p.slot.Fill(b) })
}

// advertised returns the host and port clients should use for this broker,
// as seen by the connection c.
func (s *Server) advertised(c netpoll.Conn) (string, int32) {
	host, port := s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
	if host == "" || port == 0 {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			if host == "" {
				host = a.IP.String()
			}
			if port == 0 {
				port = a.Port
			}
		} else if a := c.LocalAddr(); a != nil {
			h, p, err := net.SplitHostPort(a.String())
			if err == nil {
				if host == "" {
					host = h
				}
				if port == 0 {
					port, _ = strconv.Atoi(p)
				}
			}
		}
	}
	return host, int32(port)
}

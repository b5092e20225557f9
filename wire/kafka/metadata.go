package kafka

// Metadata v0–12, ListOffsets v0–6, InitProducerId v0–4,
// OffsetForLeaderEpoch v0–4, DescribeCluster v0–1.
//
// This node is the only broker, the leader and only replica of every
// partition, with leader epoch 0. Metadata auto-creates requested topics when
// auto-creation is on and the client allows it (v4+), with
// Config.DefaultPartitions partitions; creation runs off the loop (it waits
// for the catalog's fsync) and the response keeps its place in the order.
//
// InitProducerId serves idempotent producers only: a transactional id is
// refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (transactions are not
// served).

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/engine"
	"quartet/segment"
)

func (s *Server) handleMetadata(cs *connState, rq *request) error {
	rqv := *rq // used after OnFrame returns; cs.rq is reused
	rq = &rqv
	req := kmsg.NewPtrMetadataRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	host, port := s.advertised(cs.c)
	autoCreate := !s.cfg.DisableAutoCreate && (rq.version < 4 || req.AllowAutoTopicCreation)
	var missing []string
	if autoCreate {
		for _, t := range req.Topics {
			if t.Topic != nil && engine.ValidTopicName(*t.Topic) {
				if _, ok := s.e.Topic(*t.Topic); !ok {
					missing = append(missing, *t.Topic)
				}
			}
		}
	}
	build := func() *kmsg.MetadataResponse {
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = s.cfg.NodeID, host, port
		resp.Brokers = []kmsg.MetadataResponseBroker{b}
		cid := s.cfg.ClusterID
		resp.ClusterID = &cid
		resp.ControllerID = s.cfg.NodeID
		all := req.Topics == nil || (rq.version == 0 && len(req.Topics) == 0)
		if all {
			for _, t := range s.e.Topics() {
				resp.Topics = append(resp.Topics, s.metadataTopic(t))
			}
			return resp
		}
		for _, rt := range req.Topics {
			var t *engine.Topic
			var ok bool
			if rt.Topic != nil {
				t, ok = s.e.Topic(*rt.Topic)
			} else {
				t, ok = s.topicByID(rt.TopicID)
			}
			if ok {
				resp.Topics = append(resp.Topics, s.metadataTopic(t))
				continue
			}
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.ErrorCode = errUnknownTopicOrPartition
			if rt.Topic != nil && !engine.ValidTopicName(*rt.Topic) {
				mt.ErrorCode = errInvalidTopicException
			} else if rt.Topic == nil {
				mt.ErrorCode = errUnknownTopicID
			}
			resp.Topics = append(resp.Topics, mt)
		}
		return resp
	}
	if len(missing) == 0 {
		cs.writeResponse(rq, build(), rq.version)
		return nil
	}
	p := cs.later(rq)
	go func() {
		for _, name := range missing {
			s.autoCreate(name)
		}
		p.respond(build())
	}()
	return nil
}

// autoCreate creates a topic with the default partition count; a concurrent
// creation of the same topic is fine.
func (s *Server) autoCreate(name string) {
	if _, err := s.e.CreateTopic(name, s.cfg.DefaultPartitions, engine.TopicConfig{}); err != nil && !errors.Is(err, engine.ErrTopicExists) {
		s.log.Warn("kafka auto-create failed", "topic", name, "err", err)
	}
}

func (s *Server) topicByID(id [16]byte) (*engine.Topic, bool) {
	for _, t := range s.e.Topics() {
		if t.ID == id {
			return t, true
		}
	}
	return nil, false
}

func (s *Server) metadataTopic(t *engine.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic, mt.TopicID = &name, t.ID
	mt.AuthorizedOperations = -2147483648
	for _, p := range t.Partitions() {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.LeaderEpoch = p.Index, s.cfg.NodeID, 0
		mp.Replicas, mp.ISR = []int32{s.cfg.NodeID}, []int32{s.cfg.NodeID}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

func (s *Server) handleListOffsets(cs *connState, rq *request) error {
	req := kmsg.NewPtrListOffsetsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		t, ok := s.e.Topic(rt.Topic)
		ot := kmsg.NewListOffsetsResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewListOffsetsResponseTopicPartition()
			op.Partition = rp.Partition
			op.Timestamp, op.Offset, op.LeaderEpoch = -1, -1, 0
			var p *engine.Partition
			if ok {
				p = t.Partition(rp.Partition)
			}
			if p == nil {
				op.ErrorCode = errUnknownTopicOrPartition
				op.LeaderEpoch = -1
				ot.Partitions = append(ot.Partitions, op)
				continue
			}
			switch rp.Timestamp {
			case -1: // latest
				op.Offset = p.HighWatermark()
			case -2: // earliest
				op.Offset = p.StartOffset()
			default:
				if rp.Timestamp < 0 {
					op.ErrorCode = errInvalidRequest
					break
				}
				off, err := p.OffsetForTime(rp.Timestamp)
				if err != nil {
					op.ErrorCode = errKafkaStorageError
					break
				}
				op.Offset = off
				if off >= 0 {
					op.Timestamp = recordTimestamp(p, off)
				}
			}
			if rq.version == 0 && op.ErrorCode == errNone {
				if op.Offset >= 0 {
					op.OldStyleOffsets = []int64{op.Offset}
				} else {
					op.OldStyleOffsets = []int64{}
				}
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

// recordTimestamp returns the timestamp of the record at offset, or -1.
func recordTimestamp(p *engine.Partition, offset int64) int64 {
	b, err := p.ReadBytes(nil, offset, 1)
	if err != nil || len(b) < segment.BatchHeaderBytes {
		return -1
	}
	h, err := segment.ParseBatchHeader(b)
	if err != nil || h.Size() > len(b) {
		return -1
	}
	if h.Attributes&segment.AttrLogAppendTime != 0 {
		return h.MaxTimestamp
	}
	ts := int64(-1)
	_ = segment.ForEachRecord(b[:h.Size()], func(r *segment.Record) error {
		if r.Offset == offset {
			ts = r.Timestamp
			return errStop
		}
		return nil
	})
	return ts
}

var errStop = errors.New("stop")

func (s *Server) handleInitProducerID(cs *connState, rq *request) error {
	req := kmsg.NewPtrInitProducerIDRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	switch {
	case req.TransactionalID != nil:
		resp.ErrorCode = errTransactionalIDAuthFail
		resp.ProducerID, resp.ProducerEpoch = -1, -1
	case req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32766:
		// KIP-360: bump the epoch of an existing idempotent producer.
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
	default:
		resp.ProducerID, resp.ProducerEpoch = s.prod.NextID(), 0
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleOffsetForLeaderEpoch(cs *connState, rq *request) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		t, ok := s.e.Topic(rt.Topic)
		ot := kmsg.NewOffsetForLeaderEpochResponseTopic()
		ot.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			op.Partition = rp.Partition
			var p *engine.Partition
			if ok {
				p = t.Partition(rp.Partition)
			}
			switch {
			case p == nil:
				op.ErrorCode = errUnknownTopicOrPartition
				op.LeaderEpoch, op.EndOffset = -1, -1
			case rp.LeaderEpoch > 0:
				// Only epoch 0 exists: a later epoch is unknown to us.
				op.LeaderEpoch, op.EndOffset = 0, p.HighWatermark()
			default:
				op.LeaderEpoch, op.EndOffset = 0, p.HighWatermark()
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleDescribeCluster(cs *connState, rq *request) error {
	req := kmsg.NewPtrDescribeClusterRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	host, port := s.advertised(cs.c)
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.cfg.NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, host, port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	resp.ClusterAuthorizedOperations = -2147483648
	if req.EndpointType > 1 {
		resp.ErrorCode = errUnsupportedVersion
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

package kafka

// Admin APIs: CreateTopics v0–7, DeleteTopics v0–6, CreatePartitions v0–3,
// DescribeConfigs v0–4, AlterConfigs v0–2, IncrementalAlterConfigs v0–1,
// DeleteRecords v0–2, DescribeLogDirs v0–4.
//
// Topic configs honoured: retention.ms, retention.bytes, segment.bytes,
// message.timestamp.type, max.message.bytes, cleanup.policy (delete only).
// Any other topic config is refused with INVALID_CONFIG, as Kafka refuses an
// unknown one. The replication factor must be 1 (or -1): this is one node.
// Catalog changes wait for an fsync, so these handlers run off the loop and
// answer through a reserved slot.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/engine"
	"quartet/segment"
)

const (
	resourceTopic  = 2
	resourceBroker = 4
)

// topicConfigNames are the topic configs we serve, in DescribeConfigs order.
var topicConfigNames = []string{"cleanup.policy", "max.message.bytes", "message.timestamp.type",
	"retention.bytes", "retention.ms", "segment.bytes"}

// setTopicConfig applies name=value (value nil: back to the default).
func setTopicConfig(cfg *engine.TopicConfig, name string, value *string) error {
	v := ""
	if value != nil {
		v = *value
	}
	parseInt := func(bits int) (int64, error) {
		if value == nil {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			return 0, fmt.Errorf("invalid value %q for %s", v, name)
		}
		return n, nil
	}
	switch name {
	case "retention.ms":
		n, err := parseInt(64)
		if err != nil || n < -1 {
			return fmt.Errorf("invalid value %q for %s", v, name)
		}
		cfg.RetentionMs = n
	case "retention.bytes":
		n, err := parseInt(64)
		if err != nil || n < -1 {
			return fmt.Errorf("invalid value %q for %s", v, name)
		}
		cfg.RetentionBytes = n
	case "segment.bytes":
		n, err := parseInt(64)
		if err != nil || (value != nil && n < 14) {
			return fmt.Errorf("invalid value %q for %s", v, name)
		}
		cfg.SegmentBytes = n
	case "max.message.bytes":
		n, err := parseInt(32)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid value %q for %s", v, name)
		}
		cfg.MaxMessageBytes = int32(n)
	case "message.timestamp.type":
		if value != nil && v != "CreateTime" && v != "LogAppendTime" {
			return fmt.Errorf("invalid value %q for %s", v, name)
		}
		cfg.TimestampType = v
	case "cleanup.policy":
		if value != nil && v != "delete" {
			return fmt.Errorf("cleanup.policy %q is not supported (only delete)", v)
		}
		cfg.CleanupPolicy = v
	default:
		return fmt.Errorf("unknown or unsupported topic config %s", name)
	}
	return nil
}

// topicConfigValue returns a config's value and whether it is the default.
func topicConfigValue(cfg engine.TopicConfig, name string) (string, bool) {
	switch name {
	case "retention.ms":
		if cfg.RetentionMs != 0 {
			return strconv.FormatInt(cfg.RetentionMs, 10), false
		}
		return "-1", true
	case "retention.bytes":
		if cfg.RetentionBytes != 0 {
			return strconv.FormatInt(cfg.RetentionBytes, 10), false
		}
		return "-1", true
	case "segment.bytes":
		if cfg.SegmentBytes != 0 {
			return strconv.FormatInt(cfg.SegmentBytes, 10), false
		}
		return strconv.Itoa(segment.SegmentBytesDefault), true
	case "max.message.bytes":
		if cfg.MaxMessageBytes != 0 {
			return strconv.Itoa(int(cfg.MaxMessageBytes)), false
		}
		return strconv.Itoa(segment.BatchBytesMax), true
	case "message.timestamp.type":
		if cfg.TimestampType != "" {
			return cfg.TimestampType, false
		}
		return "CreateTime", true
	case "cleanup.policy":
		return "delete", cfg.CleanupPolicy == ""
	}
	return "", true
}

func strp(s string) *string { return &s }

func (s *Server) handleCreateTopics(cs *connState, rq *request) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	go func() {
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.Topics {
			resp.Topics = append(resp.Topics, s.createTopic(rt, req.ValidateOnly))
		}
		p.respond(resp)
	}()
	return nil
}

func (s *Server) createTopic(rt kmsg.CreateTopicsRequestTopic, validateOnly bool) kmsg.CreateTopicsResponseTopic {
	out := kmsg.NewCreateTopicsResponseTopic()
	out.Topic = rt.Topic
	fail := func(code int16, msg string) kmsg.CreateTopicsResponseTopic {
		out.ErrorCode, out.ErrorMessage = code, &msg
		out.NumPartitions, out.ReplicationFactor = -1, -1
		return out
	}
	if !engine.ValidTopicName(rt.Topic) {
		return fail(errInvalidTopicException, "invalid topic name")
	}
	n := int(rt.NumPartitions)
	if len(rt.ReplicaAssignment) > 0 {
		if n != -1 || rt.ReplicationFactor != -1 {
			return fail(errInvalidRequest, "both partitions/replication factor and a replica assignment given")
		}
		for _, a := range rt.ReplicaAssignment {
			if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.NodeID {
				return fail(errInvalidReplicaAssignment, "the only broker is "+strconv.Itoa(int(s.cfg.NodeID)))
			}
		}
		n = len(rt.ReplicaAssignment)
	}
	if n == -1 {
		n = s.cfg.DefaultPartitions
	}
	if n <= 0 {
		return fail(errInvalidPartitions, "number of partitions must be positive")
	}
	if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 && len(rt.ReplicaAssignment) == 0 {
		return fail(errInvalidReplicationFactor, "replication factor must be 1: this is a single node")
	}
	var cfg engine.TopicConfig
	for _, c := range rt.Configs {
		if err := setTopicConfig(&cfg, c.Name, c.Value); err != nil {
			return fail(errInvalidConfig, err.Error())
		}
	}
	if _, ok := s.e.Topic(rt.Topic); ok {
		return fail(errTopicAlreadyExists, "topic '"+rt.Topic+"' already exists")
	}
	out.NumPartitions, out.ReplicationFactor = int32(n), 1
	if !validateOnly {
		t, err := s.e.CreateTopic(rt.Topic, n, cfg)
		switch {
		case errors.Is(err, engine.ErrTopicExists):
			return fail(errTopicAlreadyExists, "topic '"+rt.Topic+"' already exists")
		case errors.Is(err, engine.ErrInvalidPartitions):
			return fail(errInvalidPartitions, err.Error())
		case err != nil:
			return fail(errUnknownServerError, err.Error())
		}
		out.TopicID = t.ID
	}
	for _, name := range topicConfigNames {
		v, def := topicConfigValue(cfg, name)
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value = name, strp(v)
		c.Source = 5 // DEFAULT_CONFIG
		if !def {
			c.Source = 1 // DYNAMIC_TOPIC_CONFIG
		}
		out.Configs = append(out.Configs, c)
	}
	return out
}

func (s *Server) handleDeleteTopics(cs *connState, rq *request) error {
	rqv := *rq // used after OnFrame returns; cs.rq is reused
	rq = &rqv
	req := kmsg.NewPtrDeleteTopicsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	go func() {
		resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
		type target struct {
			name *string
			id   [16]byte
		}
		var targets []target
		if rq.version >= 6 {
			for _, t := range req.Topics {
				targets = append(targets, target{t.Topic, t.TopicID})
			}
		} else {
			for _, n := range req.TopicNames {
				targets = append(targets, target{name: strp(n)})
			}
		}
		for _, tg := range targets {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID = tg.name, tg.id
			var t *engine.Topic
			var ok bool
			if tg.name != nil {
				t, ok = s.e.Topic(*tg.name)
			} else {
				t, ok = s.topicByID(tg.id)
			}
			if !ok {
				rt.ErrorCode = errUnknownTopicOrPartition
				if tg.name == nil {
					rt.ErrorCode = errUnknownTopicID
				}
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			rt.Topic, rt.TopicID = strp(t.Name), t.ID
			parts := t.Partitions()
			if err := s.e.DeleteTopic(t.Name); err != nil {
				if errors.Is(err, engine.ErrUnknownTopic) {
					rt.ErrorCode = errUnknownTopicOrPartition
				} else {
					rt.ErrorCode, rt.ErrorMessage = errUnknownServerError, strp(err.Error())
				}
			} else {
				for _, pt := range parts {
					s.prod.Forget(pt)
				}
				s.groups.DeleteTopic(t.Name)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		p.respond(resp)
	}()
	return nil
}

func (s *Server) handleCreatePartitions(cs *connState, rq *request) error {
	req := kmsg.NewPtrCreatePartitionsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	go func() {
		resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
		for _, rt := range req.Topics {
			out := kmsg.NewCreatePartitionsResponseTopic()
			out.Topic = rt.Topic
			t, ok := s.e.Topic(rt.Topic)
			switch {
			case !ok:
				out.ErrorCode = errUnknownTopicOrPartition
			case int(rt.Count) <= len(t.Partitions()):
				out.ErrorCode = errInvalidPartitions
				out.ErrorMessage = strp(fmt.Sprintf("topic has %d partitions", len(t.Partitions())))
			case req.ValidateOnly:
			default:
				if err := s.e.CreatePartitions(rt.Topic, int(rt.Count)); err != nil {
					out.ErrorCode, out.ErrorMessage = errInvalidPartitions, strp(err.Error())
				}
			}
			resp.Topics = append(resp.Topics, out)
		}
		p.respond(resp)
	}()
	return nil
}

func (s *Server) handleDescribeConfigs(cs *connState, rq *request) error {
	req := kmsg.NewPtrDescribeConfigsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		switch r.ResourceType {
		case resourceTopic:
			t, ok := s.e.Topic(r.ResourceName)
			if !ok {
				out.ErrorCode = errUnknownTopicOrPartition
				break
			}
			cfg := t.Config()
			for _, name := range topicConfigNames {
				if r.ConfigNames != nil && !contains(r.ConfigNames, name) {
					continue
				}
				v, def := topicConfigValue(cfg, name)
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value, c.IsDefault = name, strp(v), def
				c.Source = kmsg.ConfigSourceDefaultConfig
				if !def {
					c.Source = kmsg.ConfigSourceDynamicTopicConfig
				}
				switch name {
				case "cleanup.policy":
					c.ConfigType = kmsg.ConfigTypeList
				case "message.timestamp.type":
					c.ConfigType = kmsg.ConfigTypeString
				case "max.message.bytes":
					c.ConfigType = kmsg.ConfigTypeInt
				default:
					c.ConfigType = kmsg.ConfigTypeLong
				}
				out.Configs = append(out.Configs, c)
			}
		case resourceBroker:
			if r.ResourceName != "" && r.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				out.ErrorCode = errInvalidRequest
				out.ErrorMessage = strp("unknown broker " + r.ResourceName)
			}
		default:
			out.ErrorCode = errInvalidRequest
			out.ErrorMessage = strp("unsupported resource type")
		}
		resp.Resources = append(resp.Resources, out)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

type configChange struct {
	name  string
	value *string // nil: delete (back to default)
}

// alterTopic applies changes (replacing all overrides when replace is set).
func (s *Server) alterTopic(name string, changes []configChange, replace, validateOnly bool) (int16, *string) {
	t, ok := s.e.Topic(name)
	if !ok {
		return errUnknownTopicOrPartition, nil
	}
	cfg := t.Config()
	if replace {
		cfg = engine.TopicConfig{}
	}
	for _, c := range changes {
		if err := setTopicConfig(&cfg, c.name, c.value); err != nil {
			return errInvalidConfig, strp(err.Error())
		}
	}
	if validateOnly {
		return errNone, nil
	}
	if err := s.e.AlterTopicConfig(name, cfg); err != nil {
		return errUnknownServerError, strp(err.Error())
	}
	return errNone, nil
}

func (s *Server) handleAlterConfigs(cs *connState, rq *request) error {
	req := kmsg.NewPtrAlterConfigsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	go func() {
		resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
		for _, r := range req.Resources {
			out := kmsg.NewAlterConfigsResponseResource()
			out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
			if r.ResourceType != resourceTopic {
				out.ErrorCode, out.ErrorMessage = errInvalidRequest, strp("only topic configs can be altered")
			} else {
				var ch []configChange
				for _, c := range r.Configs {
					ch = append(ch, configChange{c.Name, c.Value})
				}
				out.ErrorCode, out.ErrorMessage = s.alterTopic(r.ResourceName, ch, true, req.ValidateOnly)
			}
			resp.Resources = append(resp.Resources, out)
		}
		p.respond(resp)
	}()
	return nil
}

func (s *Server) handleIncrementalAlterConfigs(cs *connState, rq *request) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	go func() {
		resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
		for _, r := range req.Resources {
			out := kmsg.NewIncrementalAlterConfigsResponseResource()
			out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
			if r.ResourceType != resourceTopic {
				out.ErrorCode, out.ErrorMessage = errInvalidRequest, strp("only topic configs can be altered")
				resp.Resources = append(resp.Resources, out)
				continue
			}
			var ch []configChange
			for _, c := range r.Configs {
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					ch = append(ch, configChange{c.Name, c.Value})
				case kmsg.IncrementalAlterConfigOpDelete:
					ch = append(ch, configChange{c.Name, nil})
				default: // APPEND / SUBTRACT: only list configs, and ours hold one value
					if c.Name == "cleanup.policy" && c.Value != nil && *c.Value == "delete" {
						ch = append(ch, configChange{c.Name, c.Value})
						continue
					}
					out.ErrorCode, out.ErrorMessage = errInvalidConfig, strp("APPEND/SUBTRACT not supported for "+c.Name)
				}
			}
			if out.ErrorCode == errNone {
				out.ErrorCode, out.ErrorMessage = s.alterTopic(r.ResourceName, ch, false, req.ValidateOnly)
			}
			resp.Resources = append(resp.Resources, out)
		}
		p.respond(resp)
	}()
	return nil
}

func (s *Server) handleDeleteRecords(cs *connState, rq *request) error {
	req := kmsg.NewPtrDeleteRecordsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		t, ok := s.e.Topic(rt.Topic)
		out := kmsg.NewDeleteRecordsResponseTopic()
		out.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			op := kmsg.NewDeleteRecordsResponseTopicPartition()
			op.Partition, op.LowWatermark = rp.Partition, -1
			var p *engine.Partition
			if ok {
				p = t.Partition(rp.Partition)
			}
			if p == nil {
				op.ErrorCode = errUnknownTopicOrPartition
				out.Partitions = append(out.Partitions, op)
				continue
			}
			off := rp.Offset
			if off == -1 {
				off = p.HighWatermark()
			}
			switch {
			case off < 0 || off > p.HighWatermark():
				op.ErrorCode = errOffsetOutOfRange
			case off <= p.StartOffset():
				op.LowWatermark = p.StartOffset()
			default:
				if err := p.DeleteRecordsBefore(off); err != nil {
					op.ErrorCode = errKafkaStorageError
				} else {
					op.LowWatermark = p.StartOffset()
				}
			}
			out.Partitions = append(out.Partitions, op)
		}
		resp.Topics = append(resp.Topics, out)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleDescribeLogDirs(cs *connState, rq *request) error {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.TotalBytes, dir.UsableBytes = -1, -1
	want := map[string]map[int32]bool{}
	all := req.Topics == nil
	for _, t := range req.Topics {
		m := map[int32]bool{}
		for _, p := range t.Partitions {
			m[p] = true
		}
		want[t.Topic] = m
	}
	var once sync.Once
	for _, t := range s.e.Topics() {
		if !all && want[t.Name] == nil {
			continue
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.Name
		for _, p := range t.Partitions() {
			once.Do(func() { dir.Dir = filepath.Dir(filepath.Dir(p.Log().Dir())) })
			if !all && !want[t.Name][p.Index] {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p.Index, p.Log().Stats().Bytes
			dt.Partitions = append(dt.Partitions, dp)
		}
		dir.Topics = append(dir.Topics, dt)
	}
	if dir.Dir == "" {
		dir.Dir = "data"
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

package engine

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"

	"quartet/segment"
)

// TopicConfig holds a topic's overrides of the engine defaults; a zero field
// means "use the default". Retention fields take -1 for "unlimited".
type TopicConfig struct {
	RetentionMs     int64  `json:"retention.ms,omitempty"`
	RetentionBytes  int64  `json:"retention.bytes,omitempty"`
	SegmentBytes    int64  `json:"segment.bytes,omitempty"`
	MaxMessageBytes int32  `json:"max.message.bytes,omitempty"`
	TimestampType   string `json:"message.timestamp.type,omitempty"` // CreateTime (default) or LogAppendTime
	CleanupPolicy   string `json:"cleanup.policy,omitempty"`         // delete (the only policy served)
}

// Topic is a named set of partitions (Kafka topic; RocketMQ topic whose
// queues are the partitions).
type Topic struct {
	Name       string
	ID         [16]byte
	e          *Engine
	mu         sync.RWMutex
	cfg        TopicConfig
	partitions []*Partition
}

// topicRecord is a topic's entry in the catalog (namespace "topic").
type topicRecord struct {
	ID         [16]byte    `json:"id"`
	Partitions int         `json:"partitions"`
	Config     TopicConfig `json:"config"`
}

const (
	metaNSTopic       = "topic"
	partitionsMax     = 10000
	topicNameBytesMax = 249
)

// Topic names as Kafka allows them, plus '%' for RocketMQ's %RETRY% and %DLQ%.
var topicNameRE = regexp.MustCompile(`^[A-Za-z0-9._%-]+$`)

// ValidTopicName reports whether name can be a topic.
func ValidTopicName(name string) bool {
	return len(name) <= topicNameBytesMax && name != "." && name != ".." && topicNameRE.MatchString(name)
}

func (e *Engine) partitionDir(topic string, p int) string {
	return filepath.Join(e.cfg.DataDir, "topics", fmt.Sprintf("%s-%d", topic, p))
}

func (e *Engine) loadTopics() error {
	var err error
	e.meta.Range(metaNSTopic, func(name string, v []byte) bool {
		var rec topicRecord
		if err = json.Unmarshal(v, &rec); err != nil {
			err = fmt.Errorf("engine: catalog entry for topic %q: %w", name, err)
			return false
		}
		t := &Topic{Name: name, ID: rec.ID, e: e, cfg: rec.Config}
		for p := 0; p < rec.Partitions; p++ {
			var part *Partition
			if part, err = t.openPartition(p); err != nil {
				return false
			}
			t.partitions = append(t.partitions, part)
		}
		e.topics[name] = t
		return true
	})
	return err
}

func (t *Topic) openPartition(p int) (*Partition, error) {
	l, err := segment.Open(t.e.partitionDir(t.Name, p), t.e.segmentConfig(t.cfg), t.e.w, t.e.logger)
	if err != nil {
		return nil, err
	}
	part := &Partition{topic: t, Index: int32(p), log: l}
	l.SetOnCommit(part.committed)
	return part, nil
}

// CreateTopic creates a topic with n partitions and records it in the catalog.
func (e *Engine) CreateTopic(name string, n int, cfg TopicConfig) (*Topic, error) {
	if !ValidTopicName(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	if n <= 0 || n > partitionsMax {
		return nil, fmt.Errorf("%w: %d", ErrInvalidPartitions, n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if _, ok := e.topics[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	t := &Topic{Name: name, e: e, cfg: cfg}
	rand.Read(t.ID[:])
	for p := 0; p < n; p++ {
		os.RemoveAll(e.partitionDir(name, p)) // leftovers of a deleted topic
		part, err := t.openPartition(p)
		if err != nil {
			for _, pp := range t.partitions {
				pp.log.Remove()
			}
			return nil, err
		}
		t.partitions = append(t.partitions, part)
	}
	if err := e.putTopicLocked(t); err != nil {
		return nil, err
	}
	e.topics[name] = t
	e.logger.Info("topic created", "topic", name, "partitions", n)
	return t, nil
}

// putTopicLocked writes t's catalog entry and waits until it is durable.
func (e *Engine) putTopicLocked(t *Topic) error {
	rec, _ := json.Marshal(topicRecord{ID: t.ID, Partitions: len(t.partitions), Config: t.cfg})
	done := make(chan error, 1)
	e.meta.Put(metaNSTopic, t.Name, rec, func(err error) { done <- err })
	return <-done
}

// Topic returns the named topic.
func (e *Engine) Topic(name string) (*Topic, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, ok := e.topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (e *Engine) Topics() []*Topic {
	e.mu.RLock()
	ts := make([]*Topic, 0, len(e.topics))
	for _, t := range e.topics {
		ts = append(ts, t)
	}
	e.mu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts
}

// DeleteTopic removes a topic and its data. Waiters on its partitions are
// woken (their reads then fail with ErrUnknownTopic upstream).
func (e *Engine) DeleteTopic(name string) error {
	e.mu.Lock()
	t, ok := e.topics[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	delete(e.topics, name)
	done := make(chan error, 1)
	e.meta.Delete(metaNSTopic, name, func(err error) { done <- err })
	e.mu.Unlock()
	err := <-done
	for _, p := range t.Partitions() {
		p.log.Remove()
		p.wakeAll()
	}
	e.logger.Info("topic deleted", "topic", name)
	return err
}

// CreatePartitions grows a topic to total partitions.
func (e *Engine) CreatePartitions(name string, total int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if total <= len(t.partitions) || total > partitionsMax {
		return fmt.Errorf("%w: %d (topic has %d)", ErrInvalidPartitions, total, len(t.partitions))
	}
	added := t.partitions
	for p := len(t.partitions); p < total; p++ {
		os.RemoveAll(e.partitionDir(name, p))
		part, err := t.openPartition(p)
		if err != nil {
			return err
		}
		added = append(added, part)
	}
	t.partitions = added
	return e.putTopicLocked(t)
}

// AlterTopicConfig replaces a topic's overrides and applies them to its logs.
func (e *Engine) AlterTopicConfig(name string, cfg TopicConfig) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.topics[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	t.mu.Lock()
	t.cfg = cfg
	parts := t.partitions
	t.mu.Unlock()
	for _, p := range parts {
		p.log.SetConfig(e.segmentConfig(cfg))
	}
	return e.putTopicLocked(t)
}

// Config returns the topic's overrides.
func (t *Topic) Config() TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cfg
}

// Partitions returns the topic's partitions in index order.
func (t *Topic) Partitions() []*Partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.partitions
}

// Partition returns partition i, or nil.
func (t *Topic) Partition(i int32) *Partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i < 0 || int(i) >= len(t.partitions) {
		return nil
	}
	return t.partitions[i]
}

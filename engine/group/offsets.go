package group

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OffsetsNamespace is the metadata-store namespace of committed offsets.
const OffsetsNamespace = "offsets"

// Offset is a committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitMs    int64
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// OffsetCommit is one partition of an OffsetCommit.
type OffsetCommit struct {
	TopicPartition
	Offset
}

// CommitRequest is an OffsetCommit for one group.
type CommitRequest struct {
	Group      string
	MemberID   string
	InstanceID *string
	Generation int32 // -1: a "simple" commit outside group management
	Offsets    []OffsetCommit
}

func offsetKey(group, topic string, partition int32) string {
	return group + "\x00" + topic + "\x00" + strconv.Itoa(int(partition))
}

func parseOffsetKey(k string) (group, topic string, partition int32, ok bool) {
	i := strings.IndexByte(k, 0)
	if i < 0 {
		return "", "", 0, false
	}
	j := strings.LastIndexByte(k, 0)
	if j <= i {
		return "", "", 0, false
	}
	p, err := strconv.Atoi(k[j+1:])
	if err != nil {
		return "", "", 0, false
	}
	return k[:i], k[i+1 : j], int32(p), true
}

// AppendOffset encodes an Offset value.
func AppendOffset(dst []byte, o Offset) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.Offset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.LeaderEpoch))
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.CommitMs))
	return append(dst, o.Metadata...)
}

// ParseOffset decodes an Offset value.
func ParseOffset(b []byte) (Offset, bool) {
	if len(b) < 20 {
		return Offset{}, false
	}
	return Offset{
		Offset:      int64(binary.BigEndian.Uint64(b)),
		LeaderEpoch: int32(binary.BigEndian.Uint32(b[8:])),
		CommitMs:    int64(binary.BigEndian.Uint64(b[12:])),
		Metadata:    string(b[20:]),
	}, true
}

func (c *Coordinator) loadOffsets() {
	if c.store == nil {
		return
	}
	n := 0
	c.store.Range(OffsetsNamespace, func(k string, v []byte) bool {
		g, t, p, ok := parseOffsetKey(k)
		o, ok2 := ParseOffset(v)
		if ok && ok2 {
			c.setOffsetLocked(g, t, p, o)
			n++
		}
		return true
	})
	if n > 0 {
		c.log.Info("kafka group offsets loaded", "offsets", n, "groups", len(c.offsets))
	}
}

func (c *Coordinator) setOffsetLocked(g, t string, p int32, o Offset) {
	gm := c.offsets[g]
	if gm == nil {
		gm = map[string]map[int32]Offset{}
		c.offsets[g] = gm
	}
	tm := gm[t]
	if tm == nil {
		tm = map[int32]Offset{}
		gm[t] = tm
	}
	tm[p] = o
}

// Commit validates the member and stores the offsets durably; done gets one
// error code per offset (all equal: a commit is all or nothing).
func (c *Coordinator) Commit(req CommitRequest, done func(errs []int16)) {
	errs := make([]int16, len(req.Offsets))
	fill := func(code int16) []int16 {
		for i := range errs {
			errs[i] = code
		}
		return errs
	}
	c.mu.Lock()
	if code := c.checkCommitLocked(req); code != ErrNone {
		c.mu.Unlock()
		done(fill(code))
		return
	}
	now := time.Now().UnixMilli()
	for i := range req.Offsets {
		o := &req.Offsets[i]
		if len(o.Metadata) > offsetMetadataBytesMax {
			errs[i] = ErrOffsetMetadataTooLarge
			continue
		}
		o.CommitMs = now
		c.setOffsetLocked(req.Group, o.Topic, o.Partition, o.Offset)
	}
	c.mu.Unlock()
	if c.store == nil {
		done(errs)
		return
	}
	var (
		mu      sync.Mutex
		left    = len(req.Offsets) + 1
		failed  bool
		scratch []byte
	)
	finish := func(err error) {
		mu.Lock()
		if err != nil {
			failed = true
		}
		left--
		last := left == 0
		mu.Unlock()
		if last {
			if failed {
				for i := range errs {
					if errs[i] == ErrNone {
						errs[i] = ErrKafkaStorageError
					}
				}
			}
			done(errs)
		}
	}
	for i, o := range req.Offsets {
		if errs[i] != ErrNone {
			finish(nil)
			continue
		}
		scratch = AppendOffset(scratch[:0], o.Offset)
		c.store.Put(OffsetsNamespace, offsetKey(req.Group, o.Topic, o.Partition), append([]byte(nil), scratch...), finish)
	}
	finish(nil)
}

func (c *Coordinator) checkCommitLocked(req CommitRequest) int16 {
	if c.closed {
		return ErrCoordinatorNotAvailable
	}
	if req.Group == "" || len(req.Group) > groupIDBytesMax {
		return ErrInvalidGroupID
	}
	g := c.groups[req.Group]
	if req.Generation < 0 && req.MemberID == "" {
		// Simple commit: allowed while nobody manages the group.
		if g != nil && len(g.members) > 0 {
			return ErrUnknownMemberID
		}
		return ErrNone
	}
	if g == nil {
		return ErrUnknownMemberID
	}
	m := g.members[req.MemberID]
	if m == nil {
		if req.InstanceID != nil && g.static[*req.InstanceID] != "" {
			return ErrFencedInstanceID
		}
		return ErrUnknownMemberID
	}
	if req.InstanceID != nil && (m.instanceID == nil || *m.instanceID != *req.InstanceID) {
		return ErrFencedInstanceID
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	if g.state == CompletingRebalance {
		return ErrRebalanceInProgress
	}
	c.refresh(g, m)
	return ErrNone
}

// Fetch returns committed offsets. With parts nil it returns every offset of
// the group. Unknown partitions are returned with Offset -1.
func (c *Coordinator) Fetch(groupID string, parts []TopicPartition) map[TopicPartition]Offset {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[TopicPartition]Offset{}
	gm := c.offsets[groupID]
	if parts == nil {
		for t, tm := range gm {
			for p, o := range tm {
				out[TopicPartition{t, p}] = o
			}
		}
		return out
	}
	for _, tp := range parts {
		o, ok := gm[tp.Topic][tp.Partition]
		if !ok {
			o = Offset{Offset: -1, LeaderEpoch: -1}
		}
		out[tp] = o
	}
	return out
}

// DeleteOffsets removes committed offsets of partitions (OffsetDelete).
func (c *Coordinator) DeleteOffsets(groupID string, parts []TopicPartition, done func(error)) {
	c.mu.Lock()
	keys := c.dropOffsetsLocked(groupID, parts)
	c.mu.Unlock()
	c.deleteKeys(keys, done)
}

// DeleteTopic forgets every group's offsets for a deleted topic.
func (c *Coordinator) DeleteTopic(topic string) {
	c.mu.Lock()
	var keys []string
	for g, gm := range c.offsets {
		for p := range gm[topic] {
			keys = append(keys, offsetKey(g, topic, p))
		}
		delete(gm, topic)
		if len(gm) == 0 {
			delete(c.offsets, g)
		}
	}
	c.mu.Unlock()
	c.deleteKeys(keys, func(error) {})
}

func (c *Coordinator) dropOffsetsLocked(groupID string, parts []TopicPartition) []string {
	gm := c.offsets[groupID]
	var keys []string
	if parts == nil {
		for t, tm := range gm {
			for p := range tm {
				keys = append(keys, offsetKey(groupID, t, p))
			}
		}
		delete(c.offsets, groupID)
		return keys
	}
	for _, tp := range parts {
		if _, ok := gm[tp.Topic][tp.Partition]; ok {
			delete(gm[tp.Topic], tp.Partition)
			if len(gm[tp.Topic]) == 0 {
				delete(gm, tp.Topic)
			}
			keys = append(keys, offsetKey(groupID, tp.Topic, tp.Partition))
		}
	}
	if gm != nil && len(gm) == 0 {
		delete(c.offsets, groupID)
	}
	return keys
}

func (c *Coordinator) deleteKeys(keys []string, done func(error)) {
	if c.store == nil || len(keys) == 0 {
		done(nil)
		return
	}
	var (
		mu    sync.Mutex
		left  = len(keys)
		first error
	)
	for _, k := range keys {
		c.store.Delete(OffsetsNamespace, k, func(err error) {
			mu.Lock()
			if err != nil && first == nil {
				first = err
			}
			left--
			last := left == 0
			e := first
			mu.Unlock()
			if last {
				done(e)
			}
		})
	}
}

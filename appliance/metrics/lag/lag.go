package lag

import (
	"strconv"
	"strings"

	"quartet/appliance/metrics"
	"quartet/engine"
	"quartet/engine/group"
)

type key struct{ group, topic string }

// Register adds the consumer-lag collector for eng to reg.
func Register(reg *metrics.Registry, eng *engine.Engine) {
	reg.Register(func(e *metrics.Emitter) { collect(e, eng) })
}

func collect(e *metrics.Emitter, eng *engine.Engine) {
	lag := map[key]int64{}
	parts := map[key]int{}
	var order []key
	eng.Meta().Range(group.OffsetsNamespace, func(k string, v []byte) bool {
		g, topic, p, ok := parseKey(k)
		if !ok {
			return true
		}
		o, ok := group.ParseOffset(v)
		if !ok {
			return true
		}
		t, ok := eng.Topic(topic)
		if !ok {
			return true
		}
		part := t.Partition(p)
		if part == nil {
			return true
		}
		kk := key{g, topic}
		if _, seen := parts[kk]; !seen {
			order = append(order, kk)
		}
		parts[kk]++
		if d := part.HighWatermark() - o.Offset; d > 0 {
			lag[kk] += d
		}
		return true
	})
	for _, kk := range order {
		l := []metrics.Label{metrics.L("group", kk.group), metrics.L("topic", kk.topic)}
		e.Gauge(metrics.ConsumerLag, "Messages between the committed offset and the high watermark, per consumer group and topic.", float64(lag[kk]), l...)
		e.Gauge("quartet_consumer_offsets", "Partitions with a committed offset, per consumer group and topic.", float64(parts[kk]), l...)
	}
}

// parseKey splits group\x00topic\x00partition.
func parseKey(k string) (g, topic string, p int32, ok bool) {
	i := strings.IndexByte(k, 0)
	j := strings.LastIndexByte(k, 0)
	if i < 0 || j <= i {
		return "", "", 0, false
	}
	n, err := strconv.ParseInt(k[j+1:], 10, 32)
	if err != nil {
		return "", "", 0, false
	}
	return k[:i], k[i+1 : j], int32(n), true
}

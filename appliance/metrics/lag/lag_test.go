package lag

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"quartet/appliance/metrics"
	"quartet/engine"
	"quartet/engine/group"
	"quartet/segment"
)

type done struct{ wg *sync.WaitGroup }

func (d done) AppendDone(_ int64, err error) {
	if err != nil {
		panic(err)
	}
	d.wg.Done()
}

func TestLag(t *testing.T) {
	eng, err := engine.Open(engine.Config{DataDir: t.TempDir(), IO: segment.IOSync}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	top, err := eng.CreateTopic("orders", 2, engine.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var b segment.BatchBuilder
	var wg sync.WaitGroup
	for p, n := range []int{10, 5} {
		b.Reset()
		for range n {
			b.Add(0, nil, []byte("v"), nil)
		}
		wg.Add(1)
		if err := top.Partition(int32(p)).Append(b.Bytes(), done{&wg}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	put := func(k string, off int64) {
		var w sync.WaitGroup
		w.Add(1)
		eng.Meta().Put(group.OffsetsNamespace, k, group.AppendOffset(nil, group.Offset{Offset: off}), func(err error) {
			if err != nil {
				t.Error(err)
			}
			w.Done()
		})
		w.Wait()
	}
	put("g1\x00orders\x000", 4)  // lag 6
	put("g1\x00orders\x001", 5)  // lag 0
	put("g2\x00orders\x000", 0)  // lag 10
	put("g3\x00missing\x000", 0) // topic gone: skipped
	put("garbage", 0)

	reg := metrics.NewRegistry()
	Register(reg, eng)
	e := reg.Gather()
	for _, c := range []struct {
		name, group string
		want        float64
	}{
		{metrics.ConsumerLag, "g1", 6}, {metrics.ConsumerLag, "g2", 10},
		{"quartet_consumer_offsets", "g1", 2}, {"quartet_consumer_offsets", "g2", 1},
	} {
		v, ok := e.Value(c.name, metrics.L("group", c.group), metrics.L("topic", "orders"))
		if !ok || v != c.want {
			t.Errorf("%s{group=%s} = %v %v, want %v", c.name, c.group, v, ok, c.want)
		}
	}
	var sb strings.Builder
	if err := e.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sb.String(), "missing") {
		t.Errorf("deleted topic reported:\n%s", sb.String())
	}
}

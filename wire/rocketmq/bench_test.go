package rocketmq

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// BenchmarkSendSync64 is the in-process whole-path benchmark: 64 goroutines
// over 4 producer instances SendSync 1 KiB messages (flush=sync). The
// whole-system figures come from quartet-bench (see README).
func BenchmarkSendSync64(b *testing.B) {
	br := startBroker(b, b.TempDir(), DefaultConfig())
	prods := make([]rocketmqProducer, 4)
	for i := range prods {
		p, err := producer.NewDefaultProducer(
			producer.WithNsResolver(primitive.NewPassthroughResolver([]string{br.nsAddr})),
			producer.WithGroupName("bench"),
			producer.WithInstanceName(instance("bp")),
			producer.WithRetry(0),
			producer.WithSendMsgTimeout(10*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Start(); err != nil {
			b.Fatal(err)
		}
		defer p.Shutdown()
		prods[i] = p
		if _, err := p.SendSync(context.Background(), primitive.NewMessage("bench", make([]byte, 1024))); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			p := prods[g%4]
			for next.Add(1) <= int64(b.N) {
				if _, err := p.SendSync(context.Background(), primitive.NewMessage("bench", body)); err != nil {
					failed.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d sends failed", f)
	}
	st := br.e.Stats().Writer
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if st.Fsyncs > 0 {
		b.ReportMetric(float64(st.SyncedReqs)/float64(st.Fsyncs), "appends/fsync")
	}
}

// goClientSendFrame is a SEND_MESSAGE frame as rocketmq-client-go writes it.
func goClientSendFrame() []byte {
	hdr := `{"code":10,"language":"GO","version":317,"opaque":12345,"flag":0,"remark":"","extFields":{"producerGroup":"qb-xyz","topic":"bench-xyz","queueId":"2","sysFlag":"0","bornTimestamp":"1764097287123","flag":"0","reconsumeTimes":"0","unitMode":"false","maxReconsumeTimes":"0","defaultTopic":"TBW102","defaultTopicQueueNums":"4","batch":"false","properties":"UNIQ_KEY\u0001C0A8000100002A9F0000000000000001\u0002","bname":"quartet"}}`
	body := make([]byte, 1024)
	frame := binary.BigEndian.AppendUint32(nil, uint32(4+len(hdr)+len(body)))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(hdr)))
	frame = append(frame, hdr...)
	return append(frame, body...)
}

func BenchmarkDecodeCommandJSON(b *testing.B) {
	frame := goClientSendFrame()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeCommand(frame); err != nil {
			b.Fatal(err)
		}
	}
}

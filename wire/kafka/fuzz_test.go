package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// frameOf wraps a kmsg request (header v1/v2 + body) in a size prefix.
func frameOf(req kmsg.Request, corr int32) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = append(b, 0, 4, 'f', 'u', 'z', 'z')
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// FuzzRequest feeds arbitrary frames to the request decoders: the header
// parser, the hand-framed Produce and Fetch decoders and kmsg for the rest.
// None may panic or allocate without bound.
func FuzzRequest(f *testing.F) {
	for _, a := range advertised {
		req := kmsg.RequestForKey(a.key)
		req.SetVersion(a.max)
		f.Add(frameOf(req, 1))
		req.SetVersion(a.min)
		f.Add(frameOf(req, 2))
	}
	pr := kmsg.NewPtrProduceRequest()
	pr.Version = 9
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = idemBatch(1, 0, 0, 2)
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	f.Add(frameOf(pr, 3))
	pr.Version = 3
	f.Add(frameOf(pr, 4))
	fr := kmsg.NewPtrFetchRequest()
	fr.Version = 12
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchRequestTopicPartition())
	fr.Topics = append(fr.Topics, ft)
	f.Add(frameOf(fr, 5))
	fr.Version = 4
	f.Add(frameOf(fr, 6))

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) >= 4 {
			binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		}
		rq, err := parseHeader(frame)
		if err != nil {
			return
		}
		switch rq.key {
		case keyProduce:
			produceWalk(rq.body, rq.flexible, func(string, int) {}, func(int32, []byte) {})
		case keyFetch:
			parseFetch(&rq)
		case keyApiVersions:
			if rq.version <= 3 {
				decode(&rq, kmsg.NewPtrApiVersionsRequest())
			}
		default:
			req := kmsg.RequestForKey(rq.key)
			decode(&rq, req)
		}
	})
}

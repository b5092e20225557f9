package netpoll

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
)

// BenchmarkWriteFile compares the sendfile path with the copying path
// (pread into a buffer + write) for one connection fetching a file range
// over loopback, one request in flight:
//
//	flock /tmp/bench.lock go test -run '^$' -bench BenchmarkWriteFile -count 5 -benchtime 2000x ./netpoll/
//
// (NETPOLL_BENCH_NOBATCH=1: with Config.NoBatchedWrites; NETPOLL_BENCH_SNDBUF=n:
// Config.SocketSendBufferBytes = n.)
func BenchmarkWriteFile(b *testing.B) {
	for _, size := range []int{4 << 10, 16 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20} {
		for _, mode := range []string{"sendfile", "copy"} {
			b.Run(fmt.Sprintf("%s/%dKiB", mode, size>>10), func(b *testing.B) {
				f := makeTestFile(b, size)
				h := &testHandler{file: f}
				cfg := Config{Loops: 1, CopyThresholdBytes: -1, NoBatchedWrites: os.Getenv("NETPOLL_BENCH_NOBATCH") != ""}
				cfg.SocketSendBufferBytes, _ = strconv.Atoi(os.Getenv("NETPOLL_BENCH_SNDBUF"))
				cfg.TCPCongestionControl = os.Getenv("NETPOLL_BENCH_CC")
				if mode == "copy" {
					cfg.CopyThresholdBytes = 1 << 40
				}
				ts := startTest(b, kindGnet, cfg, h)
				c := ts.dial()
				defer c.Close()
				p := make([]byte, 17)
				p[0] = 'F'
				binary.BigEndian.PutUint64(p[9:], uint64(size))
				req := frame(p...)
				resp := make([]byte, 4+size)
				r := bufio.NewReaderSize(c, 256<<10)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, resp); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				st := ts.srv.Stats()[0]
				b.ReportMetric(float64(st.SendfileBytes)/float64(st.SendfileBytes+st.CopiedBytes), "sendfile-share")
				if mode == "sendfile" && st.SendfileBytes == 0 {
					b.Fatal("sendfile not used")
				}
			})
		}
	}
}

// BenchmarkEcho: one connection, 64-byte request/response round trips.
func BenchmarkEcho(b *testing.B) {
	for _, k := range allKinds {
		b.Run(string(k), func(b *testing.B) {
			ts := startTest(b, k, Config{Loops: 1}, nil)
			c := ts.dial()
			defer c.Close()
			req := frame(make([]byte, 64)...)
			resp := make([]byte, len(req))
			var rd io.Reader = c
			if _, ok := c.(*net.TCPConn); !ok {
				rd = bufio.NewReader(c)
			}
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rd, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

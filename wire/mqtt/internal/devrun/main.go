// Command devrun serves MQTT alone (engine + wire/mqtt + netpoll) and prints
// the server's counters every second: a development aid for profiling the
// MQTT hot path under quartet-bench.
//
//	go run ./wire/mqtt/internal/devrun -addr 127.0.0.1:1883 -cpuprofile /tmp/cpu.out
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
	"quartet/wire/mqtt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "listen address")
	dir := flag.String("data", "", "data directory (default: temporary)")
	prof := flag.String("cpuprofile", "", "write a CPU profile until SIGINT")
	inflight := flag.Int("inflight", 0, "InflightMessagesMax")
	qhigh := flag.Int("qhigh", 0, "QueueHighMessages")
	flag.Parse()
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if *dir == "" {
		d, err := os.MkdirTemp("", "devrun")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	e, err := engine.Open(engine.Config{DataDir: *dir, Flush: segment.FlushSync, IO: segment.IOAuto}, lg)
	if err != nil {
		panic(err)
	}
	srv, err := mqtt.New(e, mqtt.Config{InflightMessagesMax: *inflight, QueueHighMessages: *qhigh}, lg)
	if err != nil {
		panic(err)
	}
	ns, err := netpoll.NewServer(netpoll.Config{Logger: lg}, []netpoll.Listener{{Addr: *addr, Protocol: srv.Protocol()}})
	if err != nil {
		panic(err)
	}
	if err := ns.Start(); err != nil {
		panic(err)
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			panic(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	t := time.NewTicker(time.Second)
	for {
		select {
		case <-sig:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ns.Stop(ctx)
			cancel()
			srv.Close()
			e.Close()
			return
		case <-t.C:
			st := srv.Stats()
			fmt.Fprintf(os.Stderr, "conns %d in %d out %d dropped %d pauses %d maxq %d\n", st.ConnsOpen.Load(), st.MsgsIn.Load(),
				st.MsgsOut.Load(), st.Dropped.Load(), st.PublisherPauses.Load(), st.QueueDepthMax.Load())
		}
	}
}

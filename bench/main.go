package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

const usage = `quartet-bench: load generator and side-by-side benchmarks for Quartet

usage:
  quartet-bench kafka|amqp|mqtt|rocketmq [flags]   one run (quartet-bench mqtt -h for flags)
  quartet-bench suite [flags]                      the named scenarios, optionally A/B against peers
  quartet-bench idle --conns 10000 --broker-pid P  idle connections and RSS per connection
  quartet-bench sink --listen 127.0.0.1:PORT       read and discard (the ceiling for kafka/rocketmq --ceiling)
  quartet-bench report --in results.json --out DIR re-render a results.json
  quartet-bench scenarios [--markdown]             list the suite's scenarios
`

// Main runs the command line and returns the exit status.
func Main(args []string) int {
	err := run(args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(os.Stdout, trimHelp(err))
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintln(os.Stderr, trimUsage(err))
		return 2
	default:
		fmt.Fprintln(os.Stderr, "quartet-bench:", err)
		return 1
	}
}

func trimUsage(err error) string {
	s := err.Error()
	p := ErrUsage.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func trimHelp(err error) string {
	s := err.Error()
	p := flag.ErrHelp.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", ErrUsage, usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "-h", "--help", "help":
		return fmt.Errorf("%w: %s", flag.ErrHelp, usage)
	case "kafka", "amqp", "mqtt", "rocketmq":
		cfg, err := ParseConfig(args[0], args[1:])
		if err != nil {
			return err
		}
		if cfg.Role != "" {
			ev := os.NewFile(3, "events")
			if ev == nil {
				return errors.New("bench: child without event pipe")
			}
			return runChild(ctx, cfg, cfg.Role, os.Stdin, ev)
		}
		res, err := Run(ctx, cfg, os.Stderr)
		if err != nil {
			return err
		}
		rep := newReport()
		rep.Runs = append(rep.Runs, res)
		PrintSummary(os.Stdout, res)
		return rep.write(cfg.Out)
	case "suite":
		return runSuite(ctx, args[1:])
	case "scenarios":
		if len(args) > 1 && args[1] == "--markdown" {
			scenariosMarkdown(os.Stdout)
			return nil
		}
		listScenarios(os.Stdout)
		return nil
	case "idle":
		ic, err := parseIdle(args[1:])
		if err != nil {
			return err
		}
		res, err := runIdle(ctx, ic, os.Stderr)
		if err != nil {
			return err
		}
		rep := newReport()
		rep.Idle = append(rep.Idle, res)
		if err := rep.write(ic.Out); err != nil {
			return err
		}
		if res.Error != "" {
			return fmt.Errorf("idle: %d of %d connected: %s", res.Connected, res.Conns, res.Error)
		}
		return nil
	case "sink":
		return runSinkCmd(ctx, args[1:])
	case "report":
		return runReportCmd(args[1:])
	}
	return fmt.Errorf("%w: unknown command %q\n%s", ErrUsage, args[0], usage)
}

func runSinkCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("quartet-bench sink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	every := fs.Duration("every", 0, "print bytes/s at this interval (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return fmt.Errorf("%w: quartet-bench sink [flags]\n%s", flag.ErrHelp, usageOf(fs))
		}
		return fmt.Errorf("%w: quartet-bench sink: %v", ErrUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "sink listening on %s pid %d\n", ln.Addr(), os.Getpid())
	var total atomic.Int64
	if *every > 0 {
		go func() {
			t := time.NewTicker(*every)
			defer t.Stop()
			var last int64
			for range t.C {
				n := total.Load()
				fmt.Fprintf(os.Stderr, "sink: %.0f MB/s\n", float64(n-last)/every.Seconds()/1e6)
				last = n
			}
		}()
	}
	return runSink(ctx, ln, &total)
}

func runReportCmd(args []string) error {
	fs := flag.NewFlagSet("quartet-bench report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	in := fs.String("in", "", "results.json to read")
	out := fs.String("out", "", "directory to write")
	if err := fs.Parse(args); err != nil || *in == "" || *out == "" {
		return fmt.Errorf("%w: quartet-bench report --in results.json --out DIR", ErrUsage)
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("bench: %s: %w", *in, err)
	}
	return rep.write(*out)
}

// PrintSummary prints one run's figures for people.
func PrintSummary(w io.Writer, r *Result) {
	c := r.Config
	name := c.Proto
	if c.Scenario != "" {
		name = c.Scenario
	}
	fmt.Fprintf(w, "%s → %s: sent %s/s, delivered %s/s (%.1f MB/s), sent %d received %d expected %d dropped %d (%.2f%%)\n",
		name, c.Label, fmtRate(r.SendRate), fmtRate(r.DeliveredRate), max(r.DeliveredMBps, r.SendMBps),
		r.Sent, r.Received, r.Expected, r.Dropped, r.DropPct)
	if r.WireMBps > 0 {
		fmt.Fprintf(w, "  wire %.1f MB/s\n", r.WireMBps)
	}
	if r.Latency.Count > 0 {
		l := r.Latency
		fmt.Fprintf(w, "  publish→consume p50 %s p90 %s p99 %s p99.9 %s max %s (n=%d)\n",
			usStr(l.P50Us), usStr(l.P90Us), usStr(l.P99Us), usStr(l.P999Us), usStr(l.MaxUs), l.Count)
	}
	if r.AckLatency.Count > 0 {
		l := r.AckLatency
		fmt.Fprintf(w, "  publish→ack     p50 %s p90 %s p99 %s p99.9 %s max %s (n=%d)\n",
			usStr(l.P50Us), usStr(l.P90Us), usStr(l.P99Us), usStr(l.P999Us), usStr(l.MaxUs), l.Count)
	}
	if c.BrokerPID > 0 {
		fmt.Fprintf(w, "  broker: %.2f CPU-s (%.0f%% of a core), %s msgs/CPU-s (in+out), RSS peak %s\n",
			r.BrokerCPU, r.BrokerCPUPct, fmtRate(r.MsgsPerBrokerCPU), fmtBytes(float64(r.BrokerRSSPeak)))
	}
	fmt.Fprintf(w, "  generator: %.2f CPU-s (%.0f%% of a core)\n", r.GenCPU, r.GenCPUPct)
	if r.Errors > 0 {
		fmt.Fprintf(w, "  errors: %d (first: %s)\n", r.Errors, r.Error)
	}
}

func numCPU() int { return runtime.NumCPU() }

package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Scenario is one named, documented benchmark of the standard set.
type Scenario struct {
	Name  string
	Proto string
	Doc   string
	Args  []string
	// CeilingArgs, for kafka and rocketmq, are the flags of the same load as
	// pre-encoded requests into a discarding sink (--ceiling targets).
	CeilingArgs []string
	// RateOf names the scenario whose median delivered rate (same target,
	// this suite run) sets --rate, times RateFrac: the fixed-rate latency runs.
	RateOf   string
	RateFrac float64
	// TopicOf names the scenario whose topic this one reads (cold consume).
	TopicOf string
	// Idle: the idle-connections scenario (quartet-bench idle).
	Idle      bool
	IdleConns int
}

// Scenarios is the standard set, in run order.
var Scenarios = []Scenario{
	// Idle first: on a freshly started broker the RSS difference is the
	// connections' cost, not heap left over from the load scenarios.
	{Name: "mqtt-idle-10k", Proto: "mqtt", Doc: "10,000 MQTT 3.1.1 connections (CONNECT, CONNACK, then silent, keepalive 0): broker RSS per connection",
		Idle: true, IdleConns: 10000},
	{Name: "amqp-idle-5k", Proto: "amqp", Doc: "5,000 AMQP connections with one channel each (amqp091-go, heartbeat off), then silent: broker RSS per connection",
		Idle: true, IdleConns: 5000},

	{Name: "kafka-p1", Proto: "kafka", Doc: "franz-go, 1 producer, 1 KiB records, acks=-1 (fdatasync'd under flush=sync), 1 partition, 1 consumer reading along",
		Args:        []string{"--producers", "1", "--consumers", "1", "--size", "1024", "--acks", "-1", "--partitions", "1"},
		CeilingArgs: []string{"--producers", "1", "--size", "1024", "--acks", "-1"}},
	{Name: "kafka-p4", Proto: "kafka", Doc: "franz-go, 4 producers, 1 KiB records, acks=-1, 4 partitions, 1 consumer reading along",
		Args:        []string{"--producers", "4", "--consumers", "1", "--size", "1024", "--acks", "-1", "--partitions", "4"},
		CeilingArgs: []string{"--producers", "4", "--size", "1024", "--acks", "-1"}},
	{Name: "kafka-consume-cold", Proto: "kafka", Doc: "raw consumer (pre-encoded Fetch v11, 1 MiB per partition, batch headers read, records discarded), 1 connection reading the kafka-p4 topic from the beginning to its end (sendfile path); rate = records / time to the last record",
		Args: []string{"--consume-only", "--consumers", "1", "--size", "1024", "--consumer", "raw"}, TopicOf: "kafka-p4",
		CeilingArgs: []string{"--producers", "1", "--size", "1024", "--acks", "-1"}},
	{Name: "kafka-consume-cold-franz", Proto: "kafka", Doc: "as kafka-consume-cold with a franz-go consumer (decodes every record: the client's cost, not the broker's)",
		Args: []string{"--consume-only", "--consumers", "1", "--size", "1024", "--consumer", "franz"}, TopicOf: "kafka-p4"},
	{Name: "kafka-latency", Proto: "kafka", Doc: "kafka-p4 at a fixed rate of 50% of its measured peak: p50/p99/p99.9 produce→consume and produce→ack",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "1024", "--acks", "-1", "--partitions", "4"}, RateOf: "kafka-p4", RateFrac: 0.5},

	{Name: "amqp-transient-100", Proto: "amqp", Doc: "amqp091-go, 2 publishers → 1 transient queue → 1 consumer, 100 B, no confirms, prefetch 1000, multi-ack every 100",
		Args: []string{"--producers", "2", "--consumers", "1", "--size", "100", "--prefetch", "1000", "--multi-ack", "100"}},
	{Name: "amqp-transient-1k", Proto: "amqp", Doc: "as amqp-transient-100 with 1 KiB messages",
		Args: []string{"--producers", "2", "--consumers", "1", "--size", "1024", "--prefetch", "1000", "--multi-ack", "100"}},
	{Name: "amqp-durable-confirm-100", Proto: "amqp", Doc: "2 publishers, durable queue, persistent messages, publisher confirms (1000 outstanding per publisher), 100 B, 1 consumer",
		Args: []string{"--producers", "2", "--consumers", "1", "--size", "100", "--durable", "--confirm", "--outstanding", "1000", "--prefetch", "1000", "--multi-ack", "100"}},
	{Name: "amqp-durable-confirm-1k", Proto: "amqp", Doc: "as amqp-durable-confirm-100 with 1 KiB messages",
		Args: []string{"--producers", "2", "--consumers", "1", "--size", "1024", "--durable", "--confirm", "--outstanding", "1000", "--prefetch", "1000", "--multi-ack", "100"}},
	{Name: "amqp-latency", Proto: "amqp", Doc: "amqp-durable-confirm-100 at a fixed rate of 50% of its measured peak: p50/p99/p99.9 publish→consume and publish→confirm",
		Args: []string{"--producers", "2", "--consumers", "1", "--size", "100", "--durable", "--confirm", "--outstanding", "1000", "--prefetch", "1000", "--multi-ack", "100"}, RateOf: "amqp-durable-confirm-100", RateFrac: 0.5},

	{Name: "mqtt-fanin-qos0-100", Proto: "mqtt", Doc: "4 publishers (bench/0..3, pre-encoded PUBLISH packets batched into 64 KiB writes) → 1 paho subscriber on bench/#, QoS 0, 100 B",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "100", "--pub-mode", "raw", "--qos", "0"}},
	{Name: "mqtt-fanin-qos0-1k", Proto: "mqtt", Doc: "as mqtt-fanin-qos0-100 with 1 KiB payloads",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "1024", "--pub-mode", "raw", "--qos", "0"}},
	{Name: "mqtt-fanin-qos1-100", Proto: "mqtt", Doc: "4 pre-encoded publishers → 1 paho subscriber on bench/#, QoS 1 both ways, 64 in flight per publisher, 100 B",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "100", "--pub-mode", "raw", "--qos", "1", "--inflight", "64"}},
	{Name: "mqtt-fanin-qos1-1k", Proto: "mqtt", Doc: "as mqtt-fanin-qos1-100 with 1 KiB payloads",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "1024", "--pub-mode", "raw", "--qos", "1", "--inflight", "64"}},
	{Name: "mqtt-fanin-qos0-100-paho", Proto: "mqtt", Doc: "as mqtt-fanin-qos0-100 with paho publishers too (one write per publish)",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "100", "--pub-mode", "paho", "--qos", "0"}},
	{Name: "mqtt-fanin-qos1-100-paho", Proto: "mqtt", Doc: "as mqtt-fanin-qos1-100 with paho publishers too (one write per publish)",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "100", "--pub-mode", "paho", "--qos", "1", "--inflight", "64"}},
	{Name: "mqtt-fanout-qos0", Proto: "mqtt", Doc: "1 pre-encoded publisher → 100 paho subscribers of bench/#, QoS 0, 100 B (each publish delivered 100 times)",
		Args: []string{"--producers", "1", "--consumers", "100", "--size", "100", "--pub-mode", "raw", "--qos", "0"}},
	{Name: "mqtt-fanout-qos1", Proto: "mqtt", Doc: "1 pre-encoded publisher → 100 paho subscribers, QoS 1, 64 in flight, 100 B",
		Args: []string{"--producers", "1", "--consumers", "100", "--size", "100", "--pub-mode", "raw", "--qos", "1", "--inflight", "64"}},
	{Name: "mqtt-latency", Proto: "mqtt", Doc: "mqtt-fanin-qos1-100 at a fixed rate of 50% of its measured peak: p50/p99/p99.9 publish→deliver and publish→PUBACK",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "100", "--pub-mode", "raw", "--qos", "1", "--inflight", "64"}, RateOf: "mqtt-fanin-qos1-100", RateFrac: 0.5},

	{Name: "rocketmq-sync-4", Proto: "rocketmq", Doc: "rocketmq-client-go, 4 producers SendSync 1 KiB (one message per request), 1 push consumer (clustering)",
		Args:        []string{"--producers", "4", "--consumers", "1", "--size", "1024"},
		CeilingArgs: []string{"--producers", "4", "--size", "1024"}},
	{Name: "rocketmq-sync-64", Proto: "rocketmq", Doc: "64 concurrent SendSync senders over 4 producer instances, 1 KiB, 1 push consumer (the group-commit case)",
		Args:        []string{"--producers", "64", "--conns", "4", "--consumers", "1", "--size", "1024"},
		CeilingArgs: []string{"--producers", "4", "--size", "1024"}},
	{Name: "rocketmq-latency", Proto: "rocketmq", Doc: "rocketmq-sync-4 at a fixed rate of 50% of its measured peak: p50/p99/p99.9 send→consume and send latency",
		Args: []string{"--producers", "4", "--consumers", "1", "--size", "1024"}, RateOf: "rocketmq-sync-4", RateFrac: 0.5},
}

func scenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// scenariosMarkdown renders the scenario table of bench/README.md.
func scenariosMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| scenario | protocol | what | flags |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, s := range Scenarios {
		flags := strings.Join(s.Args, " ")
		switch {
		case s.Idle:
			flags = fmt.Sprintf("`quartet-bench idle --proto %s --conns %d`", s.Proto, s.IdleConns)
		case s.RateOf != "":
			flags = fmt.Sprintf("`%s --rate <%.0f%% of %s>`", flags, s.RateFrac*100, s.RateOf)
		case s.TopicOf != "":
			flags = fmt.Sprintf("`%s --topic <%s's topic>`", flags, s.TopicOf)
		default:
			flags = "`" + flags + "`"
		}
		if len(s.CeilingArgs) > 0 {
			flags += "; ceiling: `" + strings.Join(s.CeilingArgs, " ") + " --ceiling`"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.Name, s.Proto, s.Doc, flags)
	}
}

func listScenarios(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range Scenarios {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Proto, s.Doc)
	}
	tw.Flush()
}

// Target is one broker (or sink) the suite drives: label=HOST:PORT[@PID].
type Target struct {
	Label   string
	Addr    string
	PID     int
	Ceiling bool
}

func parseTarget(s string, ceiling bool) (Target, error) {
	label, rest, ok := strings.Cut(s, "=")
	if !ok || label == "" {
		return Target{}, fmt.Errorf("target %q: want LABEL=HOST:PORT[@PID]", s)
	}
	t := Target{Label: label, Ceiling: ceiling}
	addr, pid, hasPID := strings.Cut(rest, "@")
	t.Addr = addr
	if hasPID {
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 {
			return Target{}, fmt.Errorf("target %q: bad pid %q", s, pid)
		}
		t.PID = n
	}
	if !strings.Contains(addr, ":") {
		return Target{}, fmt.Errorf("target %q: want LABEL=HOST:PORT[@PID]", s)
	}
	return t, nil
}

type targetList struct {
	ts      *[]Target
	ceiling bool
}

func (l targetList) String() string { return "" }
func (l targetList) Set(s string) error {
	t, err := parseTarget(s, l.ceiling)
	if err != nil {
		return err
	}
	*l.ts = append(*l.ts, t)
	return nil
}

type suiteConfig struct {
	targets   map[string]*[]Target
	only      string
	rounds    int
	duration  time.Duration
	warmup    time.Duration
	out       string
	quiet     bool
	idleConns int
	failFast  bool
}

func parseSuite(args []string) (*suiteConfig, error) {
	sc := &suiteConfig{targets: map[string]*[]Target{}}
	fs := flag.NewFlagSet("quartet-bench suite", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, p := range protocols {
		ts := new([]Target)
		sc.targets[p] = ts
		fs.Var(targetList{ts: ts}, p, "target LABEL=HOST:PORT[@PID] for the "+p+" scenarios (repeat: the first is the subject, the others are compared to it; RocketMQ: the name server)")
		if p == "kafka" || p == "rocketmq" {
			fs.Var(targetList{ts: ts, ceiling: true}, p+"-ceiling", "discarding sink LABEL=HOST:PORT[@PID] (quartet-bench sink) as the "+p+" ceiling")
		}
	}
	fs.StringVar(&sc.only, "only", "", "comma-separated scenario names (default: every scenario whose protocol has a target)")
	fs.IntVar(&sc.rounds, "rounds", 1, "rounds; targets alternate within a round (A B A B ...)")
	fs.DurationVar(&sc.duration, "duration", 10*time.Second, "measured duration of each run")
	fs.DurationVar(&sc.warmup, "warmup", 2*time.Second, "warm-up of each run")
	fs.StringVar(&sc.out, "out", "", "directory for results.json, results.md, chart.svg, chart.html")
	fs.BoolVar(&sc.quiet, "quiet", false, "no progress lines")
	fs.IntVar(&sc.idleConns, "idle-conns", 0, "connections of the idle scenarios (default: each scenario's own, 10,000 MQTT / 5,000 AMQP)")
	fs.BoolVar(&sc.failFast, "fail-fast", false, "stop at the first failed run")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			listScenarios(&b)
			return nil, fmt.Errorf("%w: quartet-bench suite [flags]\n%s\nscenarios:\n%s", flag.ErrHelp, usageOf(fs), b.String())
		}
		return nil, fmt.Errorf("%w: quartet-bench suite: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: quartet-bench suite: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if sc.rounds < 1 || sc.rounds > 100 {
		return nil, fmt.Errorf("%w: quartet-bench suite: --rounds %d: want 1..100", ErrUsage, sc.rounds)
	}
	if sc.duration <= 0 || sc.warmup < 0 {
		return nil, fmt.Errorf("%w: quartet-bench suite: --duration must be > 0 and --warmup >= 0", ErrUsage)
	}
	n := 0
	for _, ts := range sc.targets {
		n += len(*ts)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: quartet-bench suite: no targets (e.g. --mqtt quartet=127.0.0.1:1883@PID --mqtt mosquitto=127.0.0.1:18830@PID)", ErrUsage)
	}
	if sc.only != "" {
		for _, name := range strings.Split(sc.only, ",") {
			if _, ok := scenarioByName(strings.TrimSpace(name)); !ok {
				return nil, fmt.Errorf("%w: quartet-bench suite: --only: unknown scenario %q (quartet-bench scenarios lists them)", ErrUsage, name)
			}
		}
	}
	return sc, nil
}

func (sc *suiteConfig) selected() []Scenario {
	var out []Scenario
	want := map[string]bool{}
	for _, n := range strings.Split(sc.only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	for _, s := range Scenarios {
		if len(want) > 0 && !want[s.Name] {
			continue
		}
		if len(*sc.targets[s.Proto]) == 0 {
			continue
		}
		out = append(out, s)
	}
	return out
}

func runSuite(ctx context.Context, args []string) error {
	sc, err := parseSuite(args)
	if err != nil {
		return err
	}
	rep := newReport()
	var progress io.Writer = os.Stderr
	if sc.quiet {
		progress = nil
	}
	// delivered[scenario][label] = delivered rates, for RateOf.
	delivered := map[string]map[string][]float64{}
	topics := map[string]string{} // scenario/label/round -> topic
	var failed int
	for _, s := range sc.selected() {
		for round := 1; round <= sc.rounds; round++ {
			for _, t := range *sc.targets[s.Proto] {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if t.Ceiling && len(s.CeilingArgs) == 0 {
					continue
				}
				if s.Idle {
					if round > 1 {
						continue // RSS per connection is not a rate: once is enough
					}
					if t.Ceiling || t.PID == 0 {
						if !t.Ceiling && round == 1 {
							rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %s skipped (no PID given)", s.Name, t.Label))
						}
						continue
					}
					conns := s.IdleConns
					if sc.idleConns > 0 {
						conns = sc.idleConns
					}
					ic := &idleConfig{Proto: s.Proto, Target: t.Addr, Label: t.Label, Conns: conns, BrokerPID: t.PID, Hold: 3 * time.Second, Quiet: sc.quiet}
					res, err := runIdle(ctx, ic, progress)
					if err != nil {
						failed++
						rep.Notes = append(rep.Notes, fmt.Sprintf("%s round %d %s: %v", s.Name, round, t.Label, err))
						continue
					}
					rep.Idle = append(rep.Idle, res)
					continue
				}
				args := append([]string(nil), s.Args...)
				if t.Ceiling {
					args = append(append([]string(nil), s.CeilingArgs...), "--ceiling")
				}
				args = append(args, "--target", t.Addr, "--label", t.Label, "--scenario", s.Name,
					"--duration", sc.duration.String(), "--warmup", sc.warmup.String())
				if t.PID > 0 {
					args = append(args, "--broker-pid", strconv.Itoa(t.PID))
				}
				if sc.quiet {
					args = append(args, "--quiet")
				}
				key := fmt.Sprintf("%s/%s/%d", s.Name, t.Label, round)
				if s.Proto == "kafka" && !t.Ceiling {
					topic := fmt.Sprintf("suite-%x-%s-r%d", rep.Date.UnixNano()&0xffffff, s.Name, round)
					if s.TopicOf != "" {
						topic = topics[fmt.Sprintf("%s/%s/%d", s.TopicOf, t.Label, round)]
						if topic == "" {
							rep.Notes = append(rep.Notes, fmt.Sprintf("%s round %d %s: skipped (%s did not run)", s.Name, round, t.Label, s.TopicOf))
							continue
						}
					}
					topics[key] = topic
					args = append(args, "--topic", topic)
				}
				if s.RateOf != "" {
					rates := delivered[s.RateOf][t.Label]
					if len(rates) == 0 {
						if round == 1 {
							rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s: skipped (needs %s first)", s.Name, t.Label, s.RateOf))
						}
						continue
					}
					rate := statOf(rates).Median * s.RateFrac
					if base, ok := scenarioByName(s.RateOf); ok && base.Proto == "mqtt" {
						// Delivered counts every subscriber; the rate is of publishes.
						if n := consumersOf(base.Args); n > 1 {
							rate /= float64(n)
						}
					}
					args = append(args, "--rate", strconv.FormatFloat(rate, 'f', 0, 64))
				}
				cfg, err := ParseConfig(s.Proto, args)
				if err != nil {
					return fmt.Errorf("BUG: scenario %s: %w", s.Name, err)
				}
				res, err := Run(ctx, cfg, progress)
				if err != nil {
					failed++
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s round %d %s: %v", s.Name, round, t.Label, err))
					if progress != nil {
						fmt.Fprintf(progress, "%s round %d %s: FAILED: %v\n", s.Name, round, t.Label, err)
					}
					if sc.failFast {
						_ = rep.write(sc.out)
						return err
					}
					continue
				}
				res.Round = round
				rep.Runs = append(rep.Runs, res)
				if delivered[s.Name] == nil {
					delivered[s.Name] = map[string][]float64{}
				}
				rate := res.DeliveredRate
				if cfg.Consumers == 0 {
					rate = res.SendRate
				}
				delivered[s.Name][t.Label] = append(delivered[s.Name][t.Label], rate)
				if progress != nil {
					PrintSummary(progress, res)
				}
				// Write as we go, so an interrupted suite leaves its results.
				_ = rep.write(sc.out)
			}
		}
	}
	if err := rep.write(sc.out); err != nil {
		return err
	}
	rep.Comparisons = aggregate(rep.Runs)
	fmt.Fprint(os.Stdout, rep.Markdown())
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed (see notes)", failed)
	}
	return nil
}

func consumersOf(args []string) int {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--consumers" {
			n, _ := strconv.Atoi(args[i+1])
			return n
		}
	}
	return 1
}

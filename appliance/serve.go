package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"quartet/appliance/httpapi"
	"quartet/appliance/metrics"
	"quartet/appliance/metrics/lag"
	"quartet/appliance/sdnotify"
	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
	"quartet/wire/mqtt"
)

// Serve runs the appliance until ctx is cancelled: it opens the engine over
// cfg.DataDir, starts every enabled protocol listener and the admin HTTP
// listener, logs one `ready` line with every bound address, and tells systemd.
// On cancel it stops accepting, closes connections, finishes in-flight
// appends, fsyncs and closes the logs, and returns nil.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	eng, err := engine.Open(engine.Config{
		DataDir:        cfg.DataDir,
		Flush:          segment.FlushMode(cfg.Flush),
		FlushInterval:  cfg.FlushInterval,
		IO:             segment.IOMode(cfg.IO),
		SegmentBytes:   int64(cfg.SegmentBytes),
		SegmentAge:     cfg.SegmentAge,
		RetentionBytes: int64(cfg.RetentionBytes),
		RetentionAge:   cfg.RetentionAge,
	}, logger)
	if err != nil {
		return fmt.Errorf("appliance: %w", err)
	}
	reg := metrics.NewRegistry()
	metrics.RegisterProcess(reg)
	registerEngineMetrics(reg, eng)
	lag.Register(reg, eng)

	protos, err := startProtocols(eng, &cfg, logger)
	if err != nil {
		eng.Close()
		return err
	}
	registerMessageMetrics(reg, protos.counted)
	registerMQTTMetrics(reg, protos.mqtt)
	var np *netpoll.Server
	closeAll := func() {
		if np != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			if err := np.Stop(stopCtx); err != nil {
				logger.Warn("stopping listeners", "err", err)
			}
			cancel()
		}
		protos.close(logger)
		if err := eng.Close(); err != nil {
			logger.Error("closing engine", "err", err)
		}
	}
	if len(protos.listeners) > 0 {
		np, err = netpoll.NewServer(netpoll.Config{
			ConnsMax:               cfg.Limits.ConnectionsMax,
			OutboundHighWaterBytes: int(cfg.Limits.OutboundHighWaterBytes),
			MemoryHighWaterBytes:   int64(cfg.Limits.MemoryHighWaterBytes),
			MemoryLowWaterBytes:    int64(cfg.Limits.MemoryLowWaterBytes),
			Logger:                 logger,
		}, protos.listeners)
		if err == nil {
			err = np.Start()
		}
		if err != nil {
			np = nil
			closeAll()
			return fmt.Errorf("appliance: listeners: %w", err)
		}
		registerNetMetrics(reg, np)
	}
	bound := map[string]string{}
	if np != nil {
		for i, a := range np.ListenerAddrs() {
			bound[protos.names[i]] = a.String()
		}
	}
	protos.bound(bound)

	var admin *httpapi.Server
	if cfg.Listeners.HTTP.Enabled() {
		admin = httpapi.New(httpapi.Config{Addr: cfg.Listeners.HTTP.Addr, TLSCert: cfg.Listeners.HTTP.TLSCert, TLSKey: cfg.Listeners.HTTP.TLSKey}, reg, logger)
		if err := admin.Start(); err != nil {
			closeAll()
			return fmt.Errorf("appliance: http listener: %w", err)
		}
		bound["http"] = admin.Addr().String()
	}

	attrs := []any{"data_dir", cfg.DataDir, "flush", cfg.Flush, "io", eng.Writer().Mode()}
	names := make([]string, 0, len(bound))
	for n := range bound {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		attrs = append(attrs, n, bound[n])
	}
	if admin != nil {
		admin.SetReady(true)
	}
	logger.Info("ready", attrs...)
	sdnotify.Ready()
	sdnotify.Status("serving " + strings.Join(names, " "))
	wdCtx, wdCancel := context.WithCancel(ctx)
	sdnotify.StartWatchdog(wdCtx, func() bool { return true })
	if np != nil {
		go protos.watchMemory(wdCtx, np, int64(cfg.Limits.MemoryHighWaterBytes), int64(cfg.Limits.MemoryLowWaterBytes), logger)
	}

	<-ctx.Done()
	wdCancel()
	logger.Info("shutting down")
	sdnotify.Stopping()
	if admin != nil {
		admin.SetReady(false)
		shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		admin.Shutdown(shCtx)
		cancel()
	}
	closeAll()
	logger.Info("stopped")
	return nil
}

// protocolSet is the protocol servers built for the enabled listeners.
type protocolSet struct {
	listeners []netpoll.Listener
	names     []string // config name of each listener ("kafka", "mqtt_ws", ...)
	closers   []func() error
	onBound   []func(bound map[string]string)
	counted   []countedServer // servers with MessageCounts, for /metrics
	mqtt      *mqtt.Server    // for its own counters on /metrics (nil: not served)
	// onMemoryAlarm hears when the bytes buffered by all connections cross
	// the memory high-water mark (on) and fall below the low one (off).
	onMemoryAlarm []func(on bool)
}

// memoryAlarmInterval is how often Serve compares netpoll's buffered bytes
// with the memory marks.
const memoryAlarmInterval = 200 * time.Millisecond

// watchMemory raises and clears the memory alarm until ctx ends.
func (p *protocolSet) watchMemory(ctx context.Context, np *netpoll.Server, high, low int64, logger *slog.Logger) {
	if high <= 0 || len(p.onMemoryAlarm) == 0 {
		return
	}
	if low <= 0 || low > high {
		low = high * 3 / 4
	}
	t := time.NewTicker(memoryAlarmInterval)
	defer t.Stop()
	on := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mem := np.MemoryBytes()
		if on == (mem > high) || (on && mem >= low) {
			continue
		}
		on = !on
		logger.Warn("memory alarm", "on", on, "buffered_bytes", mem, "high_water_bytes", high, "low_water_bytes", low)
		for _, fn := range p.onMemoryAlarm {
			fn(on)
		}
	}
}

func (p *protocolSet) close(logger *slog.Logger) {
	for _, c := range p.closers {
		if err := c(); err != nil {
			logger.Warn("closing protocol", "err", err)
		}
	}
}

func (p *protocolSet) bound(b map[string]string) {
	for _, fn := range p.onBound {
		fn(b)
	}
}

// addListener adds one listener (plain, TLS or WebSocket) for proto.
func (p *protocolSet) addListener(name string, l Listener, proto *netpoll.Protocol, ws *netpoll.WebSocketConfig) error {
	if !l.Enabled() {
		return nil
	}
	nl := netpoll.Listener{Addr: l.Addr, Protocol: proto, WebSocket: ws}
	if l.TLS() {
		tc, err := netpoll.LoadTLS(l.TLSCert, l.TLSKey)
		if err != nil {
			return fmt.Errorf("%w: listeners.%s: %v", ErrConfig, name, err)
		}
		nl.TLS = tc
	}
	p.listeners = append(p.listeners, nl)
	p.names = append(p.names, name)
	return nil
}

// Command quartet is the Quartet broker appliance: one binary serving the
// Kafka, AMQP 0-9-1, MQTT and RocketMQ wire protocols over one storage
// engine.
//
//	quartet serve [--config FILE] [flags]   run the broker (flags override the file)
//	quartet doctor [--root DIR] [flags]     check the host; exit 1 on FAIL
//	quartet version                         print the version
//
// The version is set at build time: go build -ldflags "-X main.version=v1.2.3".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"quartet/appliance"
	"quartet/appliance/doctor"
)

var version = "dev"

const usage = `usage: quartet <command> [flags]

commands:
  serve     run the broker; quartet serve --help lists every flag
  doctor    check this host against the appliance profile; exit 1 on FAIL
  version   print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		io.WriteString(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "doctor":
		return doctor.Main(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "quartet %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "--help", "-help", "-h":
		io.WriteString(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "quartet: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	cfg, err := appliance.ParseFlags("serve", args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "quartet:", err)
		return 2
	}
	logger := newLogger(cfg.LogLevel, stderr)
	logger.Info("starting", "version", version, "pid", os.Getpid(), "data_dir", cfg.DataDir)
	logAuth(logger, &cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := appliance.Serve(ctx, cfg, logger); err != nil {
		logger.Error("exiting", "err", err)
		return 1
	}
	return 0
}

// logAuth says in the log which protocols authenticate clients and warns
// about listeners reachable beyond loopback without authentication.
func logAuth(logger *slog.Logger, cfg *appliance.Config) {
	if len(cfg.Users) == 0 {
		logger.Info("no [[users]] configured: clients are not authenticated; keep protocol listeners on loopback")
	}
	for _, l := range cfg.Unauthenticated() {
		logger.Warn("listener reachable beyond loopback without authentication",
			"listener", l.Name, "addr", l.Addr, "fix", "add [[users]] for "+l.Protocol+" or bind 127.0.0.1")
	}
}

// newLogger logs key=value lines to w. Under systemd (JOURNAL_STREAM set)
// the time is left to the journal.
func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if os.Getenv("JOURNAL_STREAM") != "" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

package doctor

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"quartet/appliance"
	"quartet/systemd"
)

// Main implements `quartet doctor [--root DIR] [--config FILE] [serve flags]`
// and returns the exit code: 0 no FAIL, 1 a FAIL, 2 a usage or config error.
// Without --config, Root/etc/quartet/quartet.toml is used when present.
// --print-sysctl, --print-unit and --print-config write the shipped files.
func Main(args []string, stdout, stderr io.Writer) int {
	var root string
	var printSysctl, printUnit, printConfig bool
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&root, "root", "/", "read /proc, /sys and /etc below this directory (fixture trees)")
		fs.BoolVar(&printSysctl, "print-sysctl", false, "print the sysctl profile and exit")
		fs.BoolVar(&printUnit, "print-unit", false, "print the systemd unit and exit")
		fs.BoolVar(&printConfig, "print-config", false, "print the commented default config and exit")
	}
	cfg, err := appliance.ParseFlagsExtra("doctor", args, stderr, extra)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	switch {
	case printSysctl:
		io.WriteString(stdout, systemd.SysctlProfile)
		return 0
	case printUnit:
		io.WriteString(stdout, systemd.Unit)
		return 0
	case printConfig:
		io.WriteString(stdout, systemd.DefaultConfig)
		return 0
	}
	configPath := configArg(args)
	if configPath == "" {
		configPath = systemd.ConfigPath
		installed := filepath.Join(root, systemd.ConfigPath)
		if _, err := os.Stat(installed); err == nil {
			cfg, err = appliance.ParseFlagsExtra("doctor", append([]string{"--config", installed}, args...), stderr, extra)
			if err != nil {
				fmt.Fprintln(stderr, "doctor:", err)
				return 2
			}
		}
	}
	var o Options
	if root == "/" {
		o = LiveOptions(cfg, configPath)
	} else {
		o = Options{Root: root, Config: cfg, ConfigPath: configPath}
	}
	rows := Check(o)
	if err := Write(stdout, rows); err != nil {
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	if Failed(rows) {
		return 1
	}
	return 0
}

// configArg returns the value of --config in args ("" if absent).
func configArg(args []string) string {
	for i, a := range args {
		a = strings.TrimPrefix(a, "-")
		a = strings.TrimPrefix(a, "-")
		if a == "config" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "config="); ok {
			return v
		}
		if a == "" { // "--" ends the flags
			break
		}
	}
	return ""
}

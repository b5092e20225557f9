package doctor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"quartet/appliance"
	"quartet/systemd"
)

// writeTree creates files (path -> content) below a new temp root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func sysctlPath(key string) string { return "proc/sys/" + strings.ReplaceAll(key, ".", "/") }

const limitsTuned = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1048576              1048576              files     
Max locked memory         unlimited            unlimited            bytes     
`

const limitsUntuned = `Limit                     Soft Limit           Hard Limit           Units     
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
`

// tunedHost is a host after make install, sysctl --system, with the daemon
// running under the unit.
func tunedHost(t *testing.T) map[string]string {
	files := map[string]string{
		"etc/systemd/system/quartet.service":                                systemd.Unit,
		"etc/sysctl.d/90-quartet.conf":                                      strings.TrimSpace(systemd.SysctlProfile),
		"proc/sys/kernel/osrelease":                                         "6.1.0-28-amd64",
		"proc/self/mounts":                                                  "/dev/vda1 / ext4 rw,relatime 0 0\n/dev/nvme0n1 /var/lib/quartet xfs rw,noatime 0 0",
		"sys/kernel/mm/transparent_hugepage/enabled":                        "always [madvise] never",
		"sys/kernel/mm/transparent_hugepage/defrag":                         "always defer [defer+madvise] madvise never",
		"sys/devices/system/clocksource/clocksource0/current_clocksource":   "tsc",
		"sys/devices/system/clocksource/clocksource0/available_clocksource": "tsc hpet acpi_pm",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor":              "performance",
		"sys/devices/system/cpu/cpu1/cpufreq/scaling_governor":              "performance",
		"proc/4242/comm":             "quartet",
		"proc/4242/cmdline":          "/usr/local/bin/quartet\x00serve\x00--config\x00/etc/quartet/quartet.toml\x00",
		"proc/4242/limits":           limitsTuned,
		"var/lib/quartet/meta/.keep": "",
	}
	for _, s := range systemd.Profile() {
		files[sysctlPath(s.Key)] = strings.ReplaceAll(s.Value, " ", "\t")
	}
	return files
}

// untunedHost is a stock Debian 12 host where nothing was installed.
func untunedHost(t *testing.T) map[string]string {
	stock := map[string]string{
		"net.core.somaxconn": "4096", "net.core.netdev_max_backlog": "1000",
		"net.core.rmem_max": "212992", "net.core.wmem_max": "212992",
		"net.ipv4.tcp_rmem": "4096\t131072\t6291456", "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
		"net.ipv4.ip_local_port_range": "32768\t60999", "net.ipv4.tcp_tw_reuse": "2",
		"net.ipv4.tcp_max_syn_backlog": "512", "net.ipv4.tcp_keepalive_time": "7200",
		"net.ipv4.tcp_keepalive_intvl": "75", "net.ipv4.tcp_keepalive_probes": "9",
		"net.ipv4.tcp_slow_start_after_idle": "1", "vm.swappiness": "60",
		"vm.dirty_background_bytes": "0", "vm.dirty_bytes": "0", "vm.max_map_count": "65530",
		"fs.file-max": "815592", "fs.nr_open": "65536", "kernel.io_uring_disabled": "2",
	}
	files := map[string]string{
		"proc/sys/kernel/osrelease":                                         "5.10.0-30-amd64",
		"proc/self/mounts":                                                  "/dev/vda1 / ext4 rw 0 0\ntmpfs /var/lib/quartet tmpfs rw 0 0",
		"sys/kernel/mm/transparent_hugepage/enabled":                        "[always] madvise never",
		"sys/kernel/mm/transparent_hugepage/defrag":                         "[always] defer defer+madvise madvise never",
		"sys/devices/system/clocksource/clocksource0/current_clocksource":   "hpet",
		"sys/devices/system/clocksource/clocksource0/available_clocksource": "tsc hpet acpi_pm",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor":              "powersave",
		"sys/devices/system/cpu/cpu1/cpufreq/scaling_governor":              "schedutil",
	}
	for k, v := range stock {
		files[sysctlPath(k)] = v
	}
	return files
}

func options(root string, cfg appliance.Config) Options {
	return Options{
		Root: root, Config: cfg,
		Statfs:       func(string) (FS, error) { return FS{FreeBytes: 500 << 30, TotalBytes: 1 << 40}, nil },
		ProbeIOUring: func() error { return nil },
		PortFree:     func(string) error { return nil },
	}
}

func serviceConfig() appliance.Config {
	c := appliance.Default()
	c.DataDir = "/var/lib/quartet"
	return c
}

func TestTunedHostAllOK(t *testing.T) {
	root := writeTree(t, tunedHost(t))
	o := options(root, serviceConfig())
	// The daemon is running: its ports are taken, by quartet.
	o.PortFree = func(string) error { return syscall.EADDRINUSE }
	rows := Check(o)
	var buf bytes.Buffer
	Write(&buf, rows)
	for _, r := range rows {
		if r.Status != OK {
			t.Errorf("not OK: %+v", r)
		}
	}
	if Failed(rows) {
		t.Error("Failed on a tuned host")
	}
	if t.Failed() {
		t.Log("\n" + buf.String())
	}
	mustHave(t, rows, "limit LimitNOFILE", "limit LimitMEMLOCK", "io_uring", "kernel", "data dir filesystem",
		"data dir free space", "data dir writable by the unit", "transparent hugepages enabled", "clocksource",
		"cpu governor", "port kafka", "port http", "systemd unit", "sysctl profile")
	for _, s := range systemd.Profile() {
		mustHave(t, rows, "sysctl "+s.Key)
	}
	for _, line := range strings.Split(systemd.Unit, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "Limit") {
			mustHave(t, rows, "limit "+k)
		}
	}
}

func mustHave(t *testing.T, rows []Row, checks ...string) {
	t.Helper()
	for _, c := range checks {
		found := false
		for _, r := range rows {
			found = found || r.Check == c
		}
		if !found {
			t.Errorf("no row %q", c)
		}
	}
}

func row(rows []Row, check string) Row {
	for _, r := range rows {
		if r.Check == check {
			return r
		}
	}
	return Row{}
}

func TestUntunedHost(t *testing.T) {
	root := writeTree(t, untunedHost(t))
	cfg := serviceConfig()
	cfg.IO = "uring"
	o := options(root, cfg)
	o.Statfs = func(string) (FS, error) { return FS{FreeBytes: 100 << 20, TotalBytes: 8 << 30}, nil }
	o.ProbeIOUring = func() error { return syscall.EPERM }
	o.PortFree = func(addr string) error {
		if strings.HasSuffix(addr, ":9092") {
			return &os.SyscallError{Syscall: "bind", Err: syscall.EADDRINUSE}
		}
		return nil
	}
	rows := Check(o)
	var buf bytes.Buffer
	Write(&buf, rows)
	t.Log("\n" + buf.String())
	if !Failed(rows) {
		t.Fatal("untuned host did not FAIL")
	}
	for _, r := range rows {
		if r.Status != OK && r.Fix == "" {
			t.Errorf("%s row without a fix: %+v", r.Status, r)
		}
	}
	// Every sysctl of the profile is off on this host, with its exact fix.
	for _, s := range systemd.Profile() {
		r := row(rows, "sysctl "+s.Key)
		if r.Status == OK {
			t.Errorf("%s OK on an untuned host: %+v", s.Key, r)
		}
		if !strings.HasPrefix(r.Fix, "sysctl -w "+s.Key+"=") || !strings.Contains(r.Fix, strings.Fields(s.Value)[0]) {
			t.Errorf("%s fix %q", s.Key, r.Fix)
		}
	}
	for check, want := range map[string]Status{
		"sysctl fs.nr_open":               Fail,
		"sysctl kernel.io_uring_disabled": Fail, // io = "uring"
		"io_uring":                        Fail,
		"kernel":                          Warn,
		"data dir filesystem":             Fail, // tmpfs
		"data dir free space":             Fail,
		"transparent hugepages enabled":   Warn,
		"transparent hugepages defrag":    Warn,
		"clocksource":                     Warn,
		"cpu governor":                    Warn,
		"port kafka":                      Fail,
		"port amqp":                       OK,
		"systemd unit":                    Warn,
		"sysctl profile":                  Warn,
		"limit LimitNOFILE":               Warn,
		"limit LimitMEMLOCK":              Warn,
	} {
		if r := row(rows, check); r.Status != want {
			t.Errorf("%s: %s, want %s (%+v)", check, r.Status, want, r)
		}
	}
	if r := row(rows, "clocksource"); r.Fix != "echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource" {
		t.Errorf("clocksource fix %q", r.Fix)
	}
	if r := row(rows, "sysctl net.ipv4.tcp_rmem"); r.Fix != `sysctl -w net.ipv4.tcp_rmem="4096 131072 16777216"` {
		t.Errorf("tcp_rmem fix %q", r.Fix)
	}
}

// A unit whose limits were lowered by a drop-in, a running daemon started
// before the fix, a data dir outside the sandbox and a privileged port.
func TestUnitDropIns(t *testing.T) {
	files := tunedHost(t)
	files["etc/systemd/system/quartet.service.d/50-site.conf"] = "[Service]\nLimitNOFILE=4096\n"
	files["proc/4242/limits"] = limitsUntuned
	root := writeTree(t, files)
	cfg := serviceConfig()
	cfg.DataDir = "/srv/quartet"
	cfg.Listeners.MQTT.Addr = "0.0.0.0:883"
	rows := Check(options(root, cfg))
	r := row(rows, "limit LimitNOFILE")
	if r.Status != Fail || !strings.Contains(r.Fix, "LimitNOFILE=1048576") || !strings.Contains(r.Value, "pid 4242") {
		t.Errorf("nofile: %+v", r)
	}
	if r := row(rows, "limit LimitMEMLOCK"); r.Status != Warn || r.Fix != "systemctl daemon-reload && systemctl restart quartet" {
		t.Errorf("memlock: %+v", r)
	}
	if r := row(rows, "data dir writable by the unit"); r.Status != Fail || !strings.Contains(r.Fix, "ReadWritePaths=/srv/quartet") {
		t.Errorf("rw: %+v", r)
	}
	if r := row(rows, "privileged port mqtt"); r.Status != Fail || !strings.Contains(r.Fix, "AmbientCapabilities=CAP_NET_BIND_SERVICE") {
		t.Errorf("low port: %+v", r)
	}
	// With the drop-ins that fix them, the rows are OK.
	files["etc/systemd/system/quartet.service.d/60-fix.conf"] = "[Service]\nLimitNOFILE=1048576\nReadWritePaths=/srv/quartet\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"
	files["proc/4242/limits"] = limitsTuned
	rows = Check(options(writeTree(t, files), cfg))
	for _, c := range []string{"limit LimitNOFILE", "data dir writable by the unit", "privileged port mqtt"} {
		if r := row(rows, c); r.Status != OK {
			t.Errorf("after drop-in: %+v", r)
		}
	}
}

func TestAuth(t *testing.T) {
	files := tunedHost(t)
	files["etc/quartet/quartet.toml"] = "x"
	root := writeTree(t, files)
	cfg := serviceConfig()
	cfg.Listeners.AMQP.Addr = "0.0.0.0:5672"
	cfg.Users = []appliance.User{{Name: "app", Password: "pw", Protocols: []string{"amqp"}}}
	cfg.Listeners.MQTT.Addr = "0.0.0.0:1883" // mqtt does not check users
	rows := Check(options(root, cfg))
	if r := row(rows, "auth amqp"); r.Status != "" {
		t.Errorf("amqp has users: %+v", r)
	}
	if r := row(rows, "auth mqtt"); r.Status != Warn || !strings.Contains(r.Fix, "listeners.mqtt.addr") {
		t.Errorf("auth: %+v", r)
	}
	if r := row(rows, "config permissions"); r.Status != Warn || r.Fix != "chgrp quartet /etc/quartet/quartet.toml && chmod 0640 /etc/quartet/quartet.toml" {
		t.Errorf("perm: %+v", r)
	}
	os.Chmod(filepath.Join(root, "etc/quartet/quartet.toml"), 0o640)
	if r := row(Check(options(root, cfg)), "config permissions"); r.Status != OK {
		t.Errorf("perm after chmod: %+v", r)
	}
}

// In a container without CAP_SYS_RESOURCE the unit's limits are capped by
// pid 1's hard limits: restarting does not help, the fix names the cap.
func TestManagerCapped(t *testing.T) {
	files := tunedHost(t)
	files["proc/4242/limits"] = "Max open files            20000                20000                files\nMax locked memory         8388608              8388608              bytes"
	files["proc/1/limits"] = files["proc/4242/limits"]
	rows := Check(options(writeTree(t, files), serviceConfig()))
	r := row(rows, "limit LimitNOFILE")
	if r.Status != Fail || !strings.Contains(r.Value, "pid 1 hard limit 20000") || !strings.Contains(r.Fix, "systemd-nspawn --rlimit=NOFILE=1048576") {
		t.Errorf("nofile: %+v", r)
	}
	r = row(rows, "limit LimitMEMLOCK")
	if r.Status != Warn || !strings.Contains(r.Fix, "--ulimit memlock=-1") {
		t.Errorf("memlock: %+v", r)
	}
}

// Every key of the profile has a comparison rule, and every Limit* of the
// unit maps to a /proc/<pid>/limits row.
func TestCoverage(t *testing.T) {
	prof := map[string]bool{}
	for _, s := range systemd.Profile() {
		prof[s.Key] = true
		if _, ok := sysctlRules[s.Key]; !ok {
			t.Errorf("profile key %s has no rule", s.Key)
		}
	}
	for k := range sysctlRules {
		if !prof[k] {
			t.Errorf("rule %s not in the profile", k)
		}
	}
	for _, line := range strings.Split(systemd.Unit, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "Limit") {
			if _, ok := limitNames[k]; !ok {
				t.Errorf("unit sets %s, doctor cannot read it", k)
			}
		}
	}
}

func TestMain_(t *testing.T) {
	root := writeTree(t, untunedHost(t))
	var out, errb bytes.Buffer
	if code := Main([]string{"--root", root}, &out, &errb); code != 1 {
		t.Errorf("exit %d on an untuned fixture, want 1\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "STATUS") || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("output:\n%s", out.String())
	}
	// Installed config under root is picked up.
	files := tunedHost(t)
	files["etc/quartet/quartet.toml"] = systemd.DefaultConfig
	root = writeTree(t, files)
	out.Reset()
	if code := Main([]string{"--root", root}, &out, &errb); code != 0 {
		t.Errorf("exit %d on a tuned fixture\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "data dir /var/lib/quartet") {
		t.Errorf("installed config not used:\n%s", out.String())
	}
	out.Reset()
	if code := Main([]string{"--print-sysctl"}, &out, &errb); code != 0 || out.String() != systemd.SysctlProfile {
		t.Error("print-sysctl")
	}
	if code := Main([]string{"--flush", "bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad config exit %d", code)
	}
}

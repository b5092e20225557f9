package doctor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"quartet/appliance"
	"quartet/systemd"
)

// Status of one check.
type Status string

const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Row is one line of the report. Fix is set on every WARN and FAIL row.
type Row struct {
	Status Status
	Check  string
	Value  string
	Want   string
	Fix    string
}

// FS describes the filesystem holding a path.
type FS struct {
	FreeBytes, TotalBytes uint64
}

// Options for Check.
type Options struct {
	// Root is where the host's /proc, /sys and /etc are read ("/" live).
	Root string
	// Config is the appliance configuration checked (data dir, ports, io).
	Config appliance.Config
	// ConfigPath names the config file in fix commands.
	ConfigPath string
	// Statfs returns the space of the filesystem holding path (a path
	// below Root). Nil skips the free-space row.
	Statfs func(path string) (FS, error)
	// ProbeIOUring tries io_uring_setup. Nil skips the probe row.
	ProbeIOUring func() error
	// PortFree tries to bind addr. Nil skips the port rows.
	PortFree func(addr string) error
	// SelfPID is excluded when looking for a running daemon (doctor's own
	// process is also named quartet). 0 excludes nothing.
	SelfPID int
}

// LiveOptions returns Options for the running host (Root "/").
func LiveOptions(cfg appliance.Config, configPath string) Options {
	return Options{
		Root: "/", Config: cfg, ConfigPath: configPath,
		Statfs: statfs, ProbeIOUring: probeIOUring, PortFree: portFree, SelfPID: os.Getpid(),
	}
}

// sysctlMode says how a live value is compared with the profile's.
type sysctlMode int

const (
	atLeast        sysctlMode = iota // live >= want
	atMost                           // live <= want
	exactly                          // live == want (all fields)
	fieldsAtLeast                    // every field live >= want
	positiveAtMost                   // 0 < live <= want (dirty_*bytes: 0 means ratio mode)
)

// sysctlRules covers every key of the profile (a test keeps them in step).
// fail marks keys whose shortfall breaks the service rather than slowing it.
var sysctlRules = map[string]struct {
	mode sysctlMode
	fail bool
}{
	"net.core.somaxconn":                 {atLeast, false},
	"net.core.netdev_max_backlog":        {atLeast, false},
	"net.core.rmem_max":                  {atLeast, false},
	"net.core.wmem_max":                  {atLeast, false},
	"net.ipv4.tcp_rmem":                  {fieldsAtLeast, false},
	"net.ipv4.tcp_wmem":                  {fieldsAtLeast, false},
	"net.ipv4.ip_local_port_range":       {exactly, false},
	"net.ipv4.tcp_tw_reuse":              {exactly, false},
	"net.ipv4.tcp_max_syn_backlog":       {atLeast, false},
	"net.ipv4.tcp_keepalive_time":        {atMost, false},
	"net.ipv4.tcp_keepalive_intvl":       {atMost, false},
	"net.ipv4.tcp_keepalive_probes":      {atMost, false},
	"net.ipv4.tcp_slow_start_after_idle": {exactly, false},
	"vm.swappiness":                      {atMost, false},
	"vm.dirty_background_bytes":          {positiveAtMost, false},
	"vm.dirty_bytes":                     {positiveAtMost, false},
	"vm.max_map_count":                   {atLeast, false},
	"fs.file-max":                        {atLeast, false},
	"fs.nr_open":                         {atLeast, true}, // systemd cannot set LimitNOFILE above it
	"kernel.io_uring_disabled":           {exactly, false},
}

// limitNames maps a unit Limit* setting to its /proc/<pid>/limits row.
var limitNames = map[string]string{
	"LimitNOFILE":     "Max open files",
	"LimitMEMLOCK":    "Max locked memory",
	"LimitNPROC":      "Max processes",
	"LimitCORE":       "Max core file size",
	"LimitSTACK":      "Max stack size",
	"LimitAS":         "Max address space",
	"LimitFSIZE":      "Max file size",
	"LimitDATA":       "Max data size",
	"LimitRSS":        "Max resident set",
	"LimitCPU":        "Max cpu time",
	"LimitLOCKS":      "Max file locks",
	"LimitSIGPENDING": "Max pending signals",
	"LimitMSGQUEUE":   "Max msgqueue size",
	"LimitNICE":       "Max nice priority",
	"LimitRTPRIO":     "Max realtime priority",
	"LimitRTTIME":     "Max realtime timeout",
}

const unlimited = math.MaxUint64

type checker struct {
	o    Options
	rows []Row
	// installed unit text (unit + drop-ins), "" if none
	unit     string
	unitPath string
	daemon   int // pid of a running `quartet serve`, 0 if none
}

func (c *checker) add(r Row) { c.rows = append(c.rows, r) }

func (c *checker) path(p string) string { return filepath.Join(c.o.Root, p) }

func (c *checker) read(p string) (string, error) {
	b, err := os.ReadFile(c.path(p))
	return strings.TrimSpace(string(b)), err
}

// Check runs every check and returns the rows in a fixed order.
func Check(o Options) []Row {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.ConfigPath == "" {
		o.ConfigPath = systemd.ConfigPath
	}
	c := &checker{o: o}
	c.findUnit()
	c.findDaemon()
	c.checkSysctls()
	c.checkUnit()
	c.checkLimits()
	c.checkIOUring()
	c.checkDataDir()
	c.checkTHP()
	c.checkClocksource()
	c.checkGovernor()
	c.checkPorts()
	c.checkAuth()
	return c.rows
}

// Failed reports whether any row is FAIL.
func Failed(rows []Row) bool {
	for _, r := range rows {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Write prints rows as a table and a summary line.
func Write(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tVALUE\tWANT\tFIX")
	n := map[Status]int{}
	for _, r := range rows {
		n[r.Status]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Status, r.Check, orDash(r.Value), orDash(r.Want), r.Fix)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d OK, %d WARN, %d FAIL\n", n[OK], n[Warn], n[Fail])
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- sysctls ---------------------------------------------------------------

func sysctlFix(key, want string) string {
	if strings.Contains(want, " ") {
		return fmt.Sprintf("sysctl -w %s=%q", key, want)
	}
	return fmt.Sprintf("sysctl -w %s=%s", key, want)
}

func (c *checker) checkSysctls() {
	for _, s := range systemd.Profile() {
		rule, ok := sysctlRules[s.Key]
		if !ok {
			rule.mode = exactly
		}
		check := "sysctl " + s.Key
		live, err := c.read(filepath.Join("proc/sys", strings.ReplaceAll(s.Key, ".", "/")))
		live = strings.Join(strings.Fields(live), " ")
		if err != nil {
			if s.Key == "kernel.io_uring_disabled" && errors.Is(err, os.ErrNotExist) {
				c.add(Row{OK, check, "absent", s.Value, ""}) // kernel < 6.6: io_uring cannot be disabled by sysctl
				continue
			}
			c.add(Row{Warn, check, "unreadable: " + shortErr(err), s.Value, sysctlFix(s.Key, s.Value)})
			continue
		}
		good, want := compareSysctl(rule.mode, live, s.Value)
		st := OK
		fix := ""
		if !good {
			st = Warn
			if rule.fail || (s.Key == "kernel.io_uring_disabled" && c.o.Config.IO == "uring") {
				st = Fail
			}
			fix = sysctlFix(s.Key, s.Value)
		}
		c.add(Row{st, check, live, want, fix})
	}
	// The profile itself, so the values survive a reboot.
	prof, err := c.read(systemd.SysctlPath)
	switch {
	case err != nil:
		c.add(Row{Warn, "sysctl profile", "not installed", systemd.SysctlPath,
			"quartet doctor --print-sysctl > " + systemd.SysctlPath + " && sysctl --system"})
	case prof != strings.TrimSpace(systemd.SysctlProfile):
		c.add(Row{Warn, "sysctl profile", "differs from this version", systemd.SysctlPath,
			"quartet doctor --print-sysctl > " + systemd.SysctlPath + " && sysctl --system"})
	default:
		c.add(Row{OK, "sysctl profile", "installed", systemd.SysctlPath, ""})
	}
}

func compareSysctl(mode sysctlMode, live, want string) (bool, string) {
	lf, wf := strings.Fields(live), strings.Fields(want)
	switch mode {
	case exactly:
		return live == want, "= " + want
	case fieldsAtLeast:
		if len(lf) != len(wf) {
			return false, ">= " + want + " (each)"
		}
		for i := range wf {
			l, err1 := strconv.ParseInt(lf[i], 10, 64)
			w, err2 := strconv.ParseInt(wf[i], 10, 64)
			if err1 != nil || err2 != nil || l < w {
				return false, ">= " + want + " (each)"
			}
		}
		return true, ">= " + want + " (each)"
	}
	l, err1 := strconv.ParseInt(live, 10, 64)
	w, err2 := strconv.ParseInt(want, 10, 64)
	ok := err1 == nil && err2 == nil
	switch mode {
	case atLeast:
		return ok && l >= w, ">= " + want
	case atMost:
		return ok && l <= w, "<= " + want
	case positiveAtMost:
		return ok && l > 0 && l <= w, "1.." + want
	}
	return false, want
}

// ---- unit and limits ------------------------------------------------------

var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system", "/lib/systemd/system"}

func (c *checker) findUnit() {
	for _, d := range unitDirs {
		p := filepath.Join(d, "quartet.service")
		if b, err := os.ReadFile(c.path(p)); err == nil {
			c.unit, c.unitPath = string(b), p
			break
		}
	}
	if c.unitPath == "" {
		return
	}
	// Drop-ins from every unit directory, applied in file-name order.
	byName := map[string]string{}
	for i := len(unitDirs) - 1; i >= 0; i-- { // /etc last so it wins
		m, _ := filepath.Glob(c.path(filepath.Join(unitDirs[i], "quartet.service.d", "*.conf")))
		for _, f := range m {
			byName[filepath.Base(f)] = f
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if b, err := os.ReadFile(byName[n]); err == nil {
			c.unit += "\n" + string(b)
		}
	}
}

// unitList returns an accumulating setting (ReadWritePaths, capabilities):
// values append, an empty assignment resets.
func unitList(unit, key string) []string {
	var out []string
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Service]" || strings.TrimSpace(k) != key {
			continue
		}
		if strings.TrimSpace(v) == "" {
			out = nil
			continue
		}
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func (c *checker) findDaemon() {
	ents, _ := os.ReadDir(c.path("proc"))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == c.o.SelfPID {
			continue
		}
		comm, _ := c.read(filepath.Join("proc", e.Name(), "comm"))
		if comm != "quartet" {
			continue
		}
		cmdline, _ := os.ReadFile(c.path(filepath.Join("proc", e.Name(), "cmdline")))
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == "serve" {
				c.daemon = pid
				return
			}
		}
	}
}

func (c *checker) checkUnit() {
	switch {
	case c.unitPath == "":
		c.add(Row{Warn, "systemd unit", "not installed", "quartet.service", "make install  # in the Quartet source tree, as root"})
	default:
		c.add(Row{OK, "systemd unit", c.unitPath, "quartet.service", ""})
	}
}

func dropInFix(name string, lines ...string) string {
	return fmt.Sprintf("mkdir -p %s && printf '[Service]\\n%s\\n' > %s/%s.conf && systemctl daemon-reload && systemctl restart quartet",
		systemd.DropInDir, strings.Join(lines, `\n`), systemd.DropInDir, name)
}

func parseLimit(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if s == "infinity" || s == "unlimited" {
		return unlimited, true
	}
	if soft, _, ok := strings.Cut(s, ":"); ok {
		s = soft
	}
	mult := uint64(1)
	for _, u := range []struct {
		s string
		m uint64
	}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}} {
		if n, ok := strings.CutSuffix(s, u.s); ok {
			s, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n * mult, true
}

func fmtLimit(n uint64) string {
	if n == unlimited {
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}

// procLimits reads the soft and hard limits of a process by
// /proc/<pid>/limits row name.
func (c *checker) procLimits(pid int) map[string][2]uint64 {
	f, err := os.Open(c.path(filepath.Join("proc", strconv.Itoa(pid), "limits")))
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string][2]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range limitNames {
			if rest, ok := strings.CutPrefix(line, name); ok {
				if f := strings.Fields(rest); len(f) > 1 {
					soft, ok1 := parseLimit(f[0])
					hard, ok2 := parseLimit(f[1])
					if ok1 && ok2 {
						out[name] = [2]uint64{soft, hard}
					}
				}
			}
		}
	}
	return out
}

func (c *checker) checkLimits() {
	var keys []string
	sc := bufio.NewScanner(strings.NewReader(systemd.Unit))
	for sc.Scan() {
		if k, _, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && strings.HasPrefix(k, "Limit") {
			keys = append(keys, k)
		}
	}
	var live, manager map[string][2]uint64
	if c.daemon != 0 {
		live = c.procLimits(c.daemon)
		manager = c.procLimits(1)
	}
	for _, key := range keys {
		wantS, _ := systemd.UnitSetting(systemd.Unit, key)
		want, _ := parseLimit(wantS)
		check := "limit " + key
		fixUnit := dropInFix("limits", key+"="+wantS)
		var have uint64
		var value string
		var fix string
		switch {
		case live != nil:
			v, ok := live[limitNames[key]]
			if !ok {
				c.add(Row{Warn, check, "unreadable", wantS, fixUnit})
				continue
			}
			have, value = v[0], fmt.Sprintf("%s (pid %d)", fmtLimit(v[0]), c.daemon)
			fix = "systemctl daemon-reload && systemctl restart quartet"
			if u, ok := systemd.UnitSetting(c.unit, key); !ok || !limitOK(u, want) {
				fix = fixUnit
			} else if m, ok := manager[limitNames[key]]; ok && m[1] < want {
				// The unit asks for enough but the service manager itself
				// is capped (a container without CAP_SYS_RESOURCE).
				value += fmt.Sprintf("; pid 1 hard limit %s", fmtLimit(m[1]))
				// nspawn and systemd settle silently for the caller's own
				// hard limit when asked for more, so say who must have it.
				fix = fmt.Sprintf("raise the hard %s of pid 1 where the host or container starts (systemd-nspawn --rlimit=%s=%s, docker run --ulimit %s=%s), run by a process that has that hard limit itself or CAP_SYS_RESOURCE",
					strings.TrimPrefix(key, "Limit"), strings.TrimPrefix(key, "Limit"), wantS,
					dockerUlimit(key), dockerValue(wantS))
			}
		case c.unitPath != "":
			u, ok := systemd.UnitSetting(c.unit, key)
			if !ok {
				c.add(Row{Warn, check, "unset in unit", wantS, fixUnit})
				continue
			}
			have, _ = parseLimit(u)
			value, fix = u+" (unit)", fixUnit
		default:
			c.add(Row{Warn, check, "unit not installed", wantS, "make install  # in the Quartet source tree, as root"})
			continue
		}
		st := OK
		if have < want {
			st = Warn
			if key == "LimitNOFILE" && have < uint64(c.o.Config.Limits.ConnectionsMax) {
				st = Fail // cannot reach limits.connections_max
			}
		} else {
			fix = ""
		}
		c.add(Row{st, check, value, ">= " + wantS, fix})
	}
}

func dockerUlimit(key string) string {
	return strings.ToLower(strings.TrimPrefix(key, "Limit"))
}

func dockerValue(v string) string {
	if v == "infinity" {
		return "-1"
	}
	return v + ":" + v
}

func limitOK(s string, want uint64) bool {
	v, ok := parseLimit(s)
	return ok && v >= want
}

// ---- io_uring ---------------------------------------------------------------

func (c *checker) checkIOUring() {
	rel, err := c.read("proc/sys/kernel/osrelease")
	if err == nil {
		maj, min := kernelVersion(rel)
		switch {
		case maj > 6 || maj == 6 && min >= 1:
			c.add(Row{OK, "kernel", rel, ">= 6.1", ""})
		default:
			c.add(Row{Warn, "kernel", rel, ">= 6.1 (io_uring SINGLE_ISSUER, unprivileged rings)",
				"apt-get install linux-image-amd64 && reboot  # Debian 12: 6.1 LTS"})
		}
	}
	if c.o.ProbeIOUring == nil {
		return
	}
	err = c.o.ProbeIOUring()
	st := Warn
	if c.o.Config.IO == "uring" {
		st = Fail
	}
	switch {
	case err == nil:
		c.add(Row{OK, "io_uring", "available", "available", ""})
	case errors.Is(err, syscall.ENOSYS):
		c.add(Row{st, "io_uring", "not in this kernel (io=auto uses pwritev)", "available",
			"apt-get install linux-image-amd64 && reboot  # a kernel built with CONFIG_IO_URING"})
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		c.add(Row{st, "io_uring", "denied: " + shortErr(err) + " (sysctl or seccomp; io=auto uses pwritev)", "available",
			"sysctl -w kernel.io_uring_disabled=0  # in a container also allow io_uring_setup/io_uring_enter in its seccomp profile"})
	default:
		c.add(Row{st, "io_uring", "probe failed: " + shortErr(err), "available",
			"sysctl -w kernel.io_uring_disabled=0"})
	}
}

func kernelVersion(rel string) (int, int) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	maj, _ := strconv.Atoi(parts[0])
	minS := parts[1]
	for i, r := range minS {
		if r < '0' || r > '9' {
			minS = minS[:i]
			break
		}
	}
	min, _ := strconv.Atoi(minS)
	return maj, min
}

// ---- data directory ----------------------------------------------------------

var fsVerdict = map[string]struct {
	st  Status
	why string
}{
	"ext4": {OK, ""}, "xfs": {OK, ""},
	"btrfs":    {Warn, "copy-on-write: fragmentation and slow fdatasync for append-only logs"},
	"zfs":      {Warn, "copy-on-write: set recordsize=128k, logbias=throughput, or use ext4/xfs"},
	"overlay":  {Warn, "container layer: use a volume or bind mount"},
	"ext3":     {Warn, "no extents: slow large files"},
	"tmpfs":    {Fail, "memory only: acknowledged messages are lost at reboot"},
	"ramfs":    {Fail, "memory only: acknowledged messages are lost at reboot"},
	"nfs":      {Fail, "network filesystem: fsync and locking semantics unsafe for a log"},
	"nfs4":     {Fail, "network filesystem: fsync and locking semantics unsafe for a log"},
	"cifs":     {Fail, "network filesystem: fsync and locking semantics unsafe for a log"},
	"fuse":     {Warn, "FUSE: fsync semantics depend on the implementation"},
	"9p":       {Warn, "host share: fsync semantics depend on the host"},
	"virtiofs": {Warn, "host share: fsync semantics depend on the host"},
}

func (c *checker) dataDirAbs() string {
	d := c.o.Config.DataDir
	if !filepath.IsAbs(d) {
		if c.o.Root == "/" {
			if a, err := filepath.Abs(d); err == nil {
				return a
			}
		}
		return filepath.Join("/", d)
	}
	return filepath.Clean(d)
}

func (c *checker) checkDataDir() {
	abs := c.dataDirAbs()
	host := c.path(abs)
	check := "data dir " + abs
	if fi, err := os.Stat(host); err != nil {
		c.add(Row{OK, check, "absent (created at start; StateDirectory= under systemd)", "directory", ""})
	} else if !fi.IsDir() {
		c.add(Row{Fail, check, "not a directory", "directory", "rm " + abs + "  # or set data_dir in " + c.o.ConfigPath})
		return
	} else {
		c.add(Row{OK, check, "exists", "directory", ""})
	}

	// Filesystem type from the mount table.
	fstype, mnt := c.mountFor(abs)
	switch v, known := fsVerdict[fstype]; {
	case fstype == "":
		c.add(Row{Warn, "data dir filesystem", "unknown (no /proc/mounts)", "ext4 or xfs", "mount an ext4 or xfs filesystem at " + abs})
	case !known:
		c.add(Row{Warn, "data dir filesystem", fstype + " on " + mnt, "ext4 or xfs",
			"mkfs.xfs /dev/<disk> && mount /dev/<disk> " + abs + "  # or set data_dir in " + c.o.ConfigPath})
	case v.st == OK:
		c.add(Row{OK, "data dir filesystem", fstype + " on " + mnt, "ext4 or xfs", ""})
	default:
		c.add(Row{v.st, "data dir filesystem", fstype + " on " + mnt + ": " + v.why, "ext4 or xfs",
			"mkfs.xfs /dev/<disk> && mount /dev/<disk> " + abs + "  # or set data_dir in " + c.o.ConfigPath})
	}

	if c.o.Statfs != nil {
		p := host
		for {
			if _, err := os.Stat(p); err == nil || p == c.o.Root || p == "/" {
				break
			}
			p = filepath.Dir(p)
		}
		fs, err := c.o.Statfs(p)
		min := uint64(c.o.Config.Limits.DiskFreeBytesMin)
		want := fmt.Sprintf(">= %v and >= 10%%", appliance.Bytes(max(min, 10<<30)))
		fix := "free space on the filesystem of " + abs + ", or lower retention_bytes/retention_age in " + c.o.ConfigPath
		switch {
		case err != nil:
			c.add(Row{Warn, "data dir free space", "statfs: " + shortErr(err), want, "ls -ld " + abs})
		case fs.FreeBytes < min:
			c.add(Row{Fail, "data dir free space", fmtBytes(fs), want + " (publishes refused below " + appliance.Bytes(min).String() + ")", fix})
		case fs.FreeBytes < 10<<30 || fs.TotalBytes > 0 && fs.FreeBytes*10 < fs.TotalBytes:
			c.add(Row{Warn, "data dir free space", fmtBytes(fs), want, fix})
		default:
			c.add(Row{OK, "data dir free space", fmtBytes(fs), want, ""})
		}
	}

	// Under ProtectSystem=strict the daemon writes only to its
	// StateDirectory and ReadWritePaths.
	if c.unitPath != "" {
		writable := []string{"/var/lib/quartet"}
		for _, sd := range unitList(c.unit, "StateDirectory") {
			writable = append(writable, filepath.Join("/var/lib", sd))
		}
		for _, p := range unitList(c.unit, "ReadWritePaths") {
			writable = append(writable, strings.TrimLeft(p, "-+"))
		}
		ok := false
		for _, w := range writable {
			if abs == w || strings.HasPrefix(abs, strings.TrimSuffix(w, "/")+"/") {
				ok = true
			}
		}
		if ok {
			c.add(Row{OK, "data dir writable by the unit", abs, "in StateDirectory or ReadWritePaths", ""})
		} else {
			c.add(Row{Fail, "data dir writable by the unit", abs + " is read-only under ProtectSystem=strict",
				"in StateDirectory or ReadWritePaths", dropInFix("data-dir", "ReadWritePaths="+abs)})
		}
	}
}

func fmtBytes(fs FS) string {
	return fmt.Sprintf("%s free of %s", humanBytes(fs.FreeBytes), humanBytes(fs.TotalBytes))
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// mountFor returns the fstype and mount point holding abs, from
// Root/proc/self/mounts (or Root/proc/mounts).
func (c *checker) mountFor(abs string) (string, string) {
	b, err := os.ReadFile(c.path("proc/self/mounts"))
	if err != nil {
		if b, err = os.ReadFile(c.path("proc/mounts")); err != nil {
			return "", ""
		}
	}
	best, bestType := "", ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := unescapeMount(f[1])
		if (abs == mp || mp == "/" || strings.HasPrefix(abs, mp+"/")) && len(mp) >= len(best) {
			best, bestType = mp, f[2]
		}
	}
	return bestType, best
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ---- CPU and memory --------------------------------------------------------

func bracketed(s string) string {
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return s
}

func (c *checker) checkTHP() {
	const dir = "/sys/kernel/mm/transparent_hugepage"
	for _, t := range []struct{ file, good, set string }{
		{"enabled", "madvise never", "madvise"},
		{"defrag", "madvise defer+madvise defer never", "defer+madvise"},
	} {
		s, err := c.read(filepath.Join(dir, t.file))
		check := "transparent hugepages " + t.file
		if err != nil {
			c.add(Row{OK, check, "not supported", t.set, ""})
			continue
		}
		v := bracketed(s)
		if strings.Contains(" "+t.good+" ", " "+v+" ") {
			c.add(Row{OK, check, v, strings.ReplaceAll(t.good, " ", "|"), ""})
		} else {
			c.add(Row{Warn, check, v + " (compaction stalls add latency spikes)", strings.ReplaceAll(t.good, " ", "|"),
				fmt.Sprintf("echo %s > %s/%s", t.set, dir, t.file)})
		}
	}
}

var fastClocks = map[string]bool{"tsc": true, "kvm-clock": true, "arch_sys_counter": true,
	"hyperv_clocksource_tsc_page": true, "xen": false}

func (c *checker) checkClocksource() {
	const dir = "/sys/devices/system/clocksource/clocksource0"
	cur, err := c.read(filepath.Join(dir, "current_clocksource"))
	if err != nil {
		c.add(Row{Warn, "clocksource", "unreadable", "tsc", "cat " + dir + "/available_clocksource"})
		return
	}
	if fastClocks[cur] {
		c.add(Row{OK, "clocksource", cur, "tsc|kvm-clock|arch_sys_counter", ""})
		return
	}
	avail, _ := c.read(filepath.Join(dir, "available_clocksource"))
	fix := "none faster available (" + avail + "); check BIOS/hypervisor TSC settings"
	for _, a := range strings.Fields(avail) {
		if fastClocks[a] {
			fix = fmt.Sprintf("echo %s > %s/current_clocksource", a, dir)
			break
		}
	}
	c.add(Row{Warn, "clocksource", cur + " (slow time reads: every timestamp costs a syscall)", "tsc|kvm-clock|arch_sys_counter", fix})
}

func (c *checker) checkGovernor() {
	m, _ := filepath.Glob(c.path("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"))
	if len(m) == 0 {
		c.add(Row{OK, "cpu governor", "not exposed (no cpufreq: VM or fixed frequency)", "performance", ""})
		return
	}
	seen := map[string]int{}
	for _, f := range m {
		b, err := os.ReadFile(f)
		if err == nil {
			seen[strings.TrimSpace(string(b))]++
		}
	}
	var parts []string
	for g, n := range seen {
		parts = append(parts, fmt.Sprintf("%s x%d", g, n))
	}
	sort.Strings(parts)
	value := strings.Join(parts, ", ")
	if len(seen) == 1 && seen["performance"] > 0 {
		c.add(Row{OK, "cpu governor", value, "performance", ""})
		return
	}
	c.add(Row{Warn, "cpu governor", value + " (frequency ramp-up adds latency)", "performance",
		`for f in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do echo performance > "$f"; done`})
}

// ---- ports -----------------------------------------------------------------

func (c *checker) checkPorts() {
	caps := unitList(c.unit, "AmbientCapabilities")
	hasBind := false
	for _, cp := range caps {
		if strings.TrimPrefix(cp, "~") == "CAP_NET_BIND_SERVICE" && !strings.HasPrefix(cp, "~") {
			hasBind = true
		}
	}
	for _, l := range c.o.Config.Listeners.All() {
		if !l.Enabled() {
			continue
		}
		_, portS, err := net.SplitHostPort(l.Addr)
		port, _ := strconv.Atoi(portS)
		if err != nil || port == 0 {
			continue
		}
		key := "listeners." + l.Name + ".addr"
		if port < 1024 && c.unitPath != "" {
			if hasBind {
				c.add(Row{OK, "privileged port " + l.Name, l.Addr, "CAP_NET_BIND_SERVICE", ""})
			} else {
				c.add(Row{Fail, "privileged port " + l.Name, l.Addr + ": the unit drops CAP_NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE",
					dropInFix("10-low-ports", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "PrivateUsers=no")})
			}
		}
		if c.o.PortFree == nil {
			continue
		}
		check := "port " + l.Name
		err = c.o.PortFree(l.Addr)
		switch {
		case err == nil:
			c.add(Row{OK, check, l.Addr + " free", "free", ""})
		case c.daemon != 0 && errors.Is(err, syscall.EADDRINUSE):
			c.add(Row{OK, check, l.Addr + " in use by quartet (pid " + strconv.Itoa(c.daemon) + ")", "free", ""})
		case errors.Is(err, syscall.EADDRINUSE):
			c.add(Row{Fail, check, l.Addr + " in use", "free",
				fmt.Sprintf("ss -ltnp 'sport = :%d'  # stop that process, or set %s in %s", port, key, c.o.ConfigPath)})
		case errors.Is(err, syscall.EACCES):
			c.add(Row{Warn, check, l.Addr + ": permission denied for this user (port < 1024)", "free",
				"sudo quartet doctor  # to test as root"})
		default:
			c.add(Row{Fail, check, l.Addr + ": " + shortErr(err), "free",
				fmt.Sprintf("set %s in %s to an address of this host (ip -br addr)", key, c.o.ConfigPath)})
		}
	}
}

// ---- authentication -------------------------------------------------------

func (c *checker) checkAuth() {
	for _, l := range c.o.Config.Unauthenticated() {
		c.add(Row{Warn, "auth " + l.Name, l.Addr + " reachable beyond loopback, no users for " + l.Protocol, "[[users]] or loopback",
			fmt.Sprintf("add a [[users]] entry for %s to %s, or set listeners.%s.addr to 127.0.0.1:<port>; then systemctl restart quartet",
				l.Protocol, c.o.ConfigPath, l.Name)})
	}
	if len(c.o.Config.Users) == 0 {
		return
	}
	fi, err := os.Stat(c.path(c.o.ConfigPath))
	if err != nil {
		return
	}
	if fi.Mode().Perm()&0o004 != 0 {
		c.add(Row{Warn, "config permissions", fmt.Sprintf("%v, holds passwords", fi.Mode().Perm()), "0640 root:quartet",
			fmt.Sprintf("chgrp quartet %s && chmod 0640 %s", c.o.ConfigPath, c.o.ConfigPath)})
	} else {
		c.add(Row{OK, "config permissions", fi.Mode().Perm().String(), "0640 root:quartet", ""})
	}
}

func shortErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"quartet/appliance"
)

func runScript(t *testing.T, script, destdir, bin string) string {
	t.Helper()
	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "DESTDIR="+destdir, "PREFIX=/usr/local", "BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func fakeBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "quartet")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func files(t *testing.T, root string) map[string]os.FileMode {
	t.Helper()
	m := map[string]os.FileMode{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			m[strings.TrimPrefix(p, root)] = fi.Mode().Perm()
		}
		return nil
	})
	return m
}

func TestInstallUninstall(t *testing.T) {
	dest := t.TempDir()
	bin := fakeBin(t)
	out := runScript(t, "install.sh", dest, bin)
	for _, want := range []string{"sysctl --system", "systemctl enable --now quartet", "installed default"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	want := map[string]os.FileMode{
		"/usr/local/bin/quartet": 0o755,
		UnitPath:                 0o644,
		SysctlPath:               0o644,
		SysusersPath:             0o644,
		ConfigPath:               0o644,
	}
	got := files(t, dest)
	if len(got) != len(want) {
		t.Errorf("tree %v, want %v", got, want)
	}
	for p, mode := range want {
		if m, ok := got[p]; !ok || m != mode {
			t.Errorf("%s: mode %v present %v, want %v", p, m, ok, mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, UnitPath))
	if v, _ := UnitSetting(string(unit), "ExecStart"); v != "/usr/local/bin/quartet serve --config /etc/quartet/quartet.toml" {
		t.Errorf("ExecStart %q", v)
	}
	// The installed config is the shipped default and loads.
	if _, err := appliance.Load(filepath.Join(dest, ConfigPath)); err != nil {
		t.Fatal(err)
	}

	// A second install keeps a modified config.
	cfgPath := filepath.Join(dest, ConfigPath)
	modified := DefaultConfig + "\n# site change\n"
	if err := os.WriteFile(cfgPath, []byte(modified), 0o640); err != nil {
		t.Fatal(err)
	}
	out = runScript(t, "install.sh", dest, bin)
	if b, _ := os.ReadFile(cfgPath); string(b) != modified {
		t.Fatal("second install overwrote the modified config")
	}
	if !strings.Contains(out, "kept existing") {
		t.Errorf("output does not say the config was kept:\n%s", out)
	}

	// Uninstall removes what install put in place, keeps the modified config.
	out = runScript(t, "uninstall.sh", dest, bin)
	got = files(t, dest)
	if len(got) != 1 || got[ConfigPath] == 0 {
		t.Errorf("after uninstall: %v", got)
	}
	if !strings.Contains(out, "kept modified") || !strings.Contains(out, "/var/lib/quartet") {
		t.Errorf("uninstall output:\n%s", out)
	}

	// Unmodified config is removed with its directory.
	dest2 := t.TempDir()
	runScript(t, "install.sh", dest2, bin)
	runScript(t, "uninstall.sh", dest2, bin)
	if got := files(t, dest2); len(got) != 0 {
		t.Errorf("after uninstall of a pristine install: %v", got)
	}
	if _, err := os.Stat(filepath.Join(dest2, "/etc/quartet")); !os.IsNotExist(err) {
		t.Errorf("/etc/quartet left: %v", err)
	}
}

func TestInstallLowPortDropIn(t *testing.T) {
	dest := t.TempDir()
	bin := fakeBin(t)
	cfg := strings.Replace(DefaultConfig, `addr = "127.0.0.1:1883"`, `addr = "0.0.0.0:883"`, 1)
	p := filepath.Join(dest, ConfigPath)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	runScript(t, "install.sh", dest, bin)
	b, err := os.ReadFile(filepath.Join(dest, DropInDir, "10-low-ports.conf"))
	if err != nil || !bytes.Contains(b, []byte("AmbientCapabilities=CAP_NET_BIND_SERVICE")) {
		t.Fatalf("drop-in: %v %s", err, b)
	}
	runScript(t, "uninstall.sh", dest, bin)
	if _, err := os.Stat(filepath.Join(dest, DropInDir)); !os.IsNotExist(err) {
		t.Errorf("drop-in dir left: %v", err)
	}
}

func TestShippedConfigLoads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "quartet.toml")
	os.WriteFile(p, []byte(DefaultConfig), 0o644)
	c, err := appliance.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/quartet" {
		t.Errorf("data_dir %q", c.DataDir)
	}
	if u := c.Unauthenticated(); len(u) != 0 {
		t.Errorf("shipped config exposes unauthenticated listeners: %v", u)
	}
	// Apart from data_dir, the shipped file states the defaults.
	d := appliance.Default()
	d.DataDir = c.DataDir
	if !reflect.DeepEqual(c, d) {
		t.Errorf("shipped config differs from Default():\n%+v\n%+v", c, d)
	}
}

func TestProfileParses(t *testing.T) {
	p := Profile()
	if len(p) < 20 {
		t.Fatalf("%d keys", len(p))
	}
	seen := map[string]bool{}
	lines := strings.Split(SysctlProfile, "\n")
	for _, s := range p {
		if seen[s.Key] {
			t.Errorf("duplicate %s", s.Key)
		}
		seen[s.Key] = true
		// Each setting is explained by a comment block right above it
		// (possibly shared with the line(s) directly above).
		i := s.Line - 2
		for i >= 0 && !strings.HasPrefix(lines[i], "#") && strings.TrimSpace(lines[i]) != "" {
			i--
		}
		if i < 0 || !strings.HasPrefix(lines[i], "#") {
			t.Errorf("%s (line %d) has no comment", s.Key, s.Line)
		}
	}
	for _, k := range []string{"net.core.somaxconn", "net.core.netdev_max_backlog", "net.core.rmem_max", "net.core.wmem_max",
		"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse",
		"net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_keepalive_time", "vm.swappiness", "vm.dirty_background_bytes",
		"vm.dirty_bytes", "vm.max_map_count", "fs.file-max", "fs.nr_open", "kernel.io_uring_disabled"} {
		if !seen[k] {
			t.Errorf("profile lacks %s", k)
		}
	}
}

// TestUnitVerify runs `systemd-analyze verify` on the unit (ExecStart
// pointed at an existing executable) and requires empty output, and checks
// `systemd-analyze security --offline=yes` exposure <= 1.5.
func TestUnitVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	bin := fakeBin(t)
	unit := filepath.Join(dir, "quartet.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(Unit, "/usr/local/bin/quartet", bin)), 0o644)
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for quartet.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if score > 1.5 {
		t.Errorf("exposure %.1f > 1.5:\n%s", score, out)
	}
}

// TestShippedConfigHasEveryKey: quartet.toml states every setting of
// appliance.Config (users aside, shown commented out).
func TestShippedConfigHasEveryKey(t *testing.T) {
	var c appliance.Config
	md, err := toml.Decode(DefaultConfig, &c)
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, k := range md.Keys() {
		inFile[k.String()] = true
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := f.Tag.Get("toml")
			if name == "" || name == "users" {
				continue
			}
			key := prefix + name
			if f.Type.Kind() == reflect.Struct {
				walk(key+".", f.Type)
				continue
			}
			if !inFile[key] {
				t.Errorf("quartet.toml lacks %s", key)
			}
		}
	}
	walk("", reflect.TypeOf(c))
	if !strings.Contains(DefaultConfig, "# [[users]]") {
		t.Error("quartet.toml does not show [[users]]")
	}
}

package systemd

import (
	"bufio"
	_ "embed"
	"fmt"
	"strings"
)

// Unit is quartet.service.
//
//go:embed quartet.service
var Unit string

// SysctlProfile is sysctl.d/90-quartet.conf.
//
//go:embed sysctl.d/90-quartet.conf
var SysctlProfile string

// DefaultConfig is quartet.toml, installed as /etc/quartet/quartet.toml.
//
//go:embed quartet.toml
var DefaultConfig string

// Paths where install.sh puts the files (relative to DESTDIR).
const (
	UnitPath     = "/etc/systemd/system/quartet.service"
	DropInDir    = "/etc/systemd/system/quartet.service.d"
	SysctlPath   = "/etc/sysctl.d/90-quartet.conf"
	SysusersPath = "/etc/sysusers.d/quartet.conf"
	ConfigPath   = "/etc/quartet/quartet.toml"
)

// Sysctl is one key = value line of the profile.
type Sysctl struct {
	Key, Value string
	Line       int
}

// ParseSysctl parses sysctl.d syntax: "key = value" lines, '#' and ';'
// comments, an optional leading '-' (ignore errors).
func ParseSysctl(text string) ([]Sysctl, error) {
	var out []Sysctl
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("systemd: sysctl line %d: no '=' in %q", n, line)
		}
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		out = append(out, Sysctl{Key: strings.ReplaceAll(k, "/", "."), Value: strings.Join(strings.Fields(v), " "), Line: n})
	}
	return out, sc.Err()
}

// Profile returns the parsed SysctlProfile.
func Profile() []Sysctl {
	p, err := ParseSysctl(SysctlProfile)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return p
}

// UnitSetting returns the last value of key in the [Service] section of a
// unit text ("" and false if absent).
func UnitSetting(unit, key string) (string, bool) {
	var val string
	found := false
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
		if section != "[Service]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == key {
			val, found = strings.TrimSpace(v), true
		}
	}
	return val, found
}

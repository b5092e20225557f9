// Package doctor implements `quartet doctor`: it checks a host against the
// sysctl profile and unit that ship in systemd/ (embedded, so the check
// always matches what install puts in place) and against the appliance's
// own needs, and prints one row per check:
//
//	STATUS  CHECK                      VALUE              WANT               FIX
//	OK      sysctl net.core.somaxconn  65535              >= 65535
//	WARN    sysctl vm.swappiness       60                 <= 1               sysctl -w vm.swappiness=1
//	FAIL    port kafka                 127.0.0.1:9092 ... free               ss -ltnp 'sport = :9092' ...
//
// Checks: every key of the sysctl profile (live value vs wanted), the
// profile and unit installed, every Limit* the unit sets (on the running
// daemon from /proc/<pid>/limits, else in the installed unit and its
// drop-ins), io_uring (probe, kernel version), the data directory's
// filesystem, free space and write access under the sandbox, transparent
// huge pages, the clock source, the CPU frequency governor, listener ports
// free, CAP_NET_BIND_SERVICE for ports below 1024, listeners beyond loopback
// without users, and a password-holding config readable by all. Every WARN/FAIL row
// carries the command that fixes it. The exit code is 1 if any row FAILs.
//
// Everything is read below Options.Root (default "/"), so tests point it
// at fixture trees; the live probes (io_uring_setup, binding ports, statfs)
// are functions in Options that tests replace.
package doctor

#!/bin/sh
# Run Quartet as a real systemd service under the unit's full sandbox, on a
# machine where systemd is not PID 1 (CI containers, VMs) or whose host you
# do not want to touch: boots this host's own OS tree in a throwaway
# systemd-nspawn container (overlayfs over /, private network), installs
# with install.sh, starts quartet.service, runs the client tests of
# appliance/cmd/quartet against it (QUARTET_TEST_ATTACH), then stops it.
# Needs root, go, overlayfs and systemd-nspawn (Debian: systemd-container).
# Leaves nothing behind.
#
#   make build && sudo sh systemd/sandbox-check.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN=${BIN:-$repo/bin/quartet}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac

[ -x "$BIN" ] || { echo "sandbox-check: $BIN missing (make build)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "sandbox-check: needs root" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || {
	echo "sandbox-check: systemd-nspawn missing (apt-get install systemd-container)" >&2
	exit 1
}

work=$(mktemp -d /var/tmp/quartet-sandbox.XXXXXX)
root=$work/root
nspawn_pid=
leader=
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		if [ -n "$leader" ]; then
			nsenter -t "$leader" -m -u -i -n -p systemctl poweroff 2>/dev/null || true
		fi
		for _ in $(seq 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
		kill -9 "$nspawn_pid" 2>/dev/null || true
	fi
	if mountpoint -q "$root"; then umount "$root"; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$work/upper" "$work/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$root"

DESTDIR=$root PREFIX=/usr/local BIN=$BIN sh "$here/install.sh" >/dev/null
systemd-sysusers --root="$root" "$root/etc/sysusers.d/quartet.conf"
units=$root/etc/systemd/system
mkdir -p "$units/multi-user.target.wants"
ln -sf /etc/systemd/system/quartet.service "$units/multi-user.target.wants/quartet.service"
# Boot little more than quartet: mask what the host enabled itself.
for w in "$units"/multi-user.target.wants/* "$units"/timers.target.wants/* "$units"/sockets.target.wants/*; do
	[ -e "$w" ] || [ -L "$w" ] || continue
	n=$(basename "$w")
	[ "$n" = quartet.service ] || ln -sf /dev/null "$units/$n"
done

# The unit's LimitNOFILE/LimitMEMLOCK can only take effect up to the hard
# limits of the container's pid 1 (systemd), which come from here: ask for
# the unit's values. setrlimit cannot raise a hard limit without
# CAP_SYS_RESOURCE, and nspawn (like systemd) then silently settles for the
# highest value it may set, the caller's own hard limit.
systemd-nspawn -q -D "$root" --private-network --register=no --keep-unit --console=passive \
	--rlimit=RLIMIT_NOFILE=1048576 --rlimit=RLIMIT_MEMLOCK=infinity \
	-M quartet-sandbox -b >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
for _ in $(seq 60); do
	leader=$(awk '{print $1}' "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null || true)
	[ -n "$leader" ] && break
	sleep 1
done
[ -n "$leader" ] || { cat "$work/console.log"; echo "sandbox-check: container did not start" >&2; exit 1; }
inside() { nsenter -t "$leader" -m -u -i -n -p "$@"; }
# await_service: wait until quartet.service is active or failed ($state).
await_service() {
	state=
	for _ in $(seq 120); do
		state=$(inside systemctl is-active quartet.service 2>/dev/null || true)
		case $state in active | failed) break ;; esac
		# Restart=on-failure hides a failing start behind "activating".
		n=$(inside systemctl show -p NRestarts --value quartet.service 2>/dev/null || echo 0)
		[ "${n:-0}" -gt "${restarts:-0}" ] && { state="failed (restarted $n times)"; break; }
		sleep 1
	done
}
# not_active: say why quartet.service is not running, and fail.
not_active() {
	echo "sandbox-check: quartet.service is '$state'" >&2
	inside systemctl list-jobs --no-pager 2>&1 | tail -n 10 >&2 || true
	inside journalctl -b --no-pager -n 30 -o short-monotonic 2>&1 >&2 || true
	tail -n 20 "$work/console.log" >&2
	echo "sandbox-check: FAIL" >&2
	exit 1
}
await_service

echo "== quartet.service: $state"
inside systemctl status quartet.service --no-pager -n 0 2>&1 | sed -n '1,6p' || true
inside journalctl -u quartet.service -b --no-pager -o cat | grep -E 'segment writer|msg=ready|level=ERROR' || true
[ "$state" = active ] || not_active
inside systemd-analyze security quartet.service --no-pager | tail -1
rc=0

# ---- limits: /proc/<pid>/limits of the daemon against the unit ----------
# lim PID ROW: "soft hard" of a /proc/PID/limits row in the container,
# unlimited as "inf"; limrow ROW reads a limits file on stdin.
lim() { inside cat "/proc/$1/limits" | limrow "$2"; }
limrow() {
	awk -v row="$1" 'index($0, row) == 1 {
		n = split(substr($0, length(row) + 1), f, " +")
		i = (f[1] == "") ? 2 : 1
		s = f[i]; h = f[i + 1]
		if (s == "unlimited") s = "inf"
		if (h == "unlimited") h = "inf"
		print s, h }'
}
# unitlim KEY: the value the loaded unit sets (infinity as "inf").
unitlim() {
	v=$(inside systemctl show -p "$1" --value quartet.service)
	[ "$v" = infinity ] && v=inf
	echo "$v"
}
# minlim A B: the smaller of two limits ("inf" is largest).
minlim() {
	if [ "$1" = inf ]; then echo "$2"; elif [ "$2" = inf ]; then echo "$1"
	elif [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi
}
# check_limits LABEL: the daemon's soft and hard limit for each key must be
# exactly min(unit value, pid 1 hard limit); sets $clamped.
check_limits() {
	pid=$(inside systemctl show -p MainPID --value quartet.service)
	clamped=
	for key in $limit_keys; do
		case $key in
		LimitNOFILE) row="Max open files" ;;
		LimitMEMLOCK) row="Max locked memory" ;;
		LimitNPROC) row="Max processes" ;;
		LimitCORE) row="Max core file size" ;;
		LimitSTACK) row="Max stack size" ;;
		LimitAS) row="Max address space" ;;
		LimitFSIZE) row="Max file size" ;;
		*) echo "sandbox-check: no /proc limits row known for $key" >&2; rc=1; continue ;;
		esac
		want=$(unitlim "$key")
		ceil=$(lim 1 "$row" | cut -d' ' -f2)
		exp=$(minlim "$want" "$ceil")
		got=$(lim "$pid" "$row")
		if [ "$got" = "$exp $exp" ]; then
			verdict=ok
		else
			verdict=MISMATCH rc=1
		fi
		note="unit value in effect"
		if [ "$exp" != "$want" ]; then
			note="clamped to pid 1's hard limit" clamped="$clamped $key"
		fi
		printf '%s %-12s unit=%-8s pid1_hard=%-8s daemon(pid %s) soft/hard=%-17s expected %s/%s: %s (%s)\n' \
			"$1" "$key" "$want" "$ceil" "$pid" "$(echo "$got" | tr ' ' /)" "$exp" "$exp" "$verdict" "$note"
	done
}
# Every Limit*= the shipped unit sets.
limit_keys=$(sed -n 's/^\(Limit[A-Z]*\)=.*/\1/p' "$units/quartet.service" | sort -u)
echo "== limits (container pid 1 = systemd; nspawn asked for NOFILE=1048576 MEMLOCK=infinity)"
# First show that the unit's Limit* lines are applied at all: values below
# pid 1's ceiling in a runtime drop-in must appear exactly.
probe=/run/systemd/system/quartet.service.d
inside sh -c "mkdir -p $probe && printf '[Service]\nLimitNOFILE=4096\nLimitMEMLOCK=4M\n' >$probe/zz-limits-probe.conf"
inside systemctl daemon-reload
inside systemctl restart quartet.service
await_service
[ "$state" = active ] || not_active
check_limits probe
inside rm -f "$probe/zz-limits-probe.conf"
inside systemctl daemon-reload
inside systemctl restart quartet.service
await_service
[ "$state" = active ] || not_active
check_limits unit
if [ -n "$clamped" ]; then
	# Why: the container's pid 1 inherits this script's hard limits, and
	# only CAP_SYS_RESOURCE (in the initial user namespace) may raise them.
	bnd=$(awk '/^CapBnd/ {print $2}' /proc/$$/status)
	if [ $(((0x$bnd >> 24) & 1)) = 1 ]; then sysres=present; else sysres=absent; fi
	raise=$(prlimit --nofile=1048576:1048576 --memlock=unlimited:unlimited true 2>&1) && raise=ok
	echo "limits: the unit's values for$clamped are not reachable on this host:"
	echo "  this script's hard limits: NOFILE $(limrow 'Max open files' </proc/$$/limits | cut -d' ' -f2), MEMLOCK $(limrow 'Max locked memory' </proc/$$/limits | cut -d' ' -f2)"
	echo "  CAP_SYS_RESOURCE in its bounding set: $sysres; prlimit to NOFILE=1048576 MEMLOCK=unlimited: ${raise:-ok}"
	echo "  nspawn --rlimit= and systemd's Limit*= settle for the highest value they may set, so the daemon runs with pid 1's ceiling (asserted above)"
	if [ "${QUARTET_SANDBOX_STRICT_LIMITS:-}" = 1 ]; then
		echo "QUARTET_SANDBOX_STRICT_LIMITS=1: the unit's own values are required"
		rc=1
	fi
fi

echo "== client tests against the service"
(cd "$repo" && go test -c -o "$work/quartet.test" ./appliance/cmd/quartet)
attach=kafka=127.0.0.1:9092,amqp=127.0.0.1:5672,mqtt=127.0.0.1:1883,rocketmq_namesrv=127.0.0.1:9876,http=127.0.0.1:8080
out=$( (cd "$work" && nsenter -t "$leader" -n env QUARTET_TEST_ATTACH=$attach ./quartet.test \
	-test.run 'TestHealthAndReady|TestMetricsMove|TestMessageCounts' -test.v) 2>&1) || rc=1
echo "$out" | grep -E '^(---|PASS|FAIL|ok|\s+---|\s+\S+_test\.go:)' || true

echo "== quartet doctor inside the container"
inside /usr/local/bin/quartet doctor >"$work/doctor.txt" || true
grep -Ev '^OK ' "$work/doctor.txt" || true
# doctor must report both limits: OK where the unit's value is in effect,
# WARN/FAIL naming pid 1's hard limit where it is clamped.
for key in $limit_keys; do
	r=$(grep -E "^[A-Z]+ +limit $key " "$work/doctor.txt" || true)
	case "$clamped " in
	*" $key "*) echo "$r" | grep -Eq '^(WARN|FAIL) .*pid 1 hard limit' || { echo "doctor: $key row wrong: $r"; rc=1; } ;;
	*) echo "$r" | grep -Eq '^OK ' || { echo "doctor: $key row wrong: $r"; rc=1; } ;;
	esac
done

echo "== systemctl stop quartet"
inside systemctl stop quartet.service
result=$(inside systemctl show quartet.service -p Result --value)
status=$(inside systemctl show quartet.service -p ExecMainStatus --value)
echo "Result=$result ExecMainStatus=$status"
[ "$result" = success ] && [ "$status" = 0 ] || rc=1
[ $rc = 0 ] && echo "sandbox-check: PASS" || echo "sandbox-check: FAIL"
exit $rc

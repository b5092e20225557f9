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

systemd-nspawn -q -D "$root" --private-network --register=no --keep-unit --console=passive \
	-M quartet-sandbox -b >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
for _ in $(seq 60); do
	leader=$(awk '{print $1}' "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null || true)
	[ -n "$leader" ] && break
	sleep 1
done
[ -n "$leader" ] || { cat "$work/console.log"; echo "sandbox-check: container did not start" >&2; exit 1; }
inside() { nsenter -t "$leader" -m -u -i -n -p "$@"; }
state=
for _ in $(seq 120); do
	state=$(inside systemctl is-active quartet.service 2>/dev/null || true)
	case $state in active | failed) break ;; esac
	sleep 1
done

echo "== quartet.service: $state"
inside systemctl status quartet.service --no-pager -n 0 2>&1 | sed -n '1,6p' || true
inside journalctl -u quartet.service -b --no-pager -o cat | grep -E 'segment writer|msg=ready|level=ERROR' || true
[ "$state" = active ] || exit 1
pid=$(inside systemctl show -p MainPID --value quartet.service)
inside grep -E 'open files|locked memory' "/proc/$pid/limits"
inside systemd-analyze security quartet.service --no-pager | tail -1

echo "== client tests against the service"
(cd "$repo" && go test -c -o "$work/quartet.test" ./appliance/cmd/quartet)
attach=kafka=127.0.0.1:9092,amqp=127.0.0.1:5672,mqtt=127.0.0.1:1883,rocketmq_namesrv=127.0.0.1:9876,http=127.0.0.1:8080
rc=0
(cd "$work" && nsenter -t "$leader" -n env QUARTET_TEST_ATTACH=$attach ./quartet.test \
	-test.run 'TestHealthAndReady|TestMetricsMove' -test.v) | grep -E '^(---|PASS|FAIL|ok|\s+---)' || rc=1

echo "== quartet doctor inside the container"
inside /usr/local/bin/quartet doctor | grep -Ev '^OK ' || true

echo "== systemctl stop quartet"
inside systemctl stop quartet.service
result=$(inside systemctl show quartet.service -p Result --value)
status=$(inside systemctl show quartet.service -p ExecMainStatus --value)
echo "Result=$result ExecMainStatus=$status"
[ "$result" = success ] && [ "$status" = 0 ] || rc=1
[ $rc = 0 ] && echo "sandbox-check: PASS" || echo "sandbox-check: FAIL"
exit $rc

#!/bin/sh
# Install Quartet as a systemd service. Called by `make install`.
# Environment: DESTDIR (staging root, default empty), PREFIX (default
# /usr/local), BIN (built binary, default bin/quartet).
# Never overwrites an existing /etc/quartet/quartet.toml.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BIN=${BIN:-bin/quartet}

if [ ! -f "$BIN" ]; then
	echo "install: $BIN not found (run make build first)" >&2
	exit 1
fi
case $PREFIX in
/*) ;;
*) echo "install: PREFIX must be an absolute path, got '$PREFIX'" >&2; exit 1 ;;
esac

live=no
if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; then
	live=yes
fi

bindir=$DESTDIR$PREFIX/bin
unitdir=$DESTDIR/etc/systemd/system
sysctldir=$DESTDIR/etc/sysctl.d
sysusersdir=$DESTDIR/etc/sysusers.d
confdir=$DESTDIR/etc/quartet

install -d -m 0755 "$bindir" "$unitdir" "$sysctldir" "$sysusersdir" "$confdir"
install -m 0755 "$BIN" "$bindir/quartet"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s#/usr/local/bin/quartet#$PREFIX/bin/quartet#g" "$here/quartet.service" >"$tmp"
install -m 0644 "$tmp" "$unitdir/quartet.service"
install -m 0644 "$here/sysctl.d/90-quartet.conf" "$sysctldir/90-quartet.conf"
install -m 0644 "$here/sysusers.d/quartet.conf" "$sysusersdir/quartet.conf"

if [ -e "$confdir/quartet.toml" ]; then
	config_note="kept existing $confdir/quartet.toml (shipped default: $here/quartet.toml)"
else
	install -m 0644 "$here/quartet.toml" "$confdir/quartet.toml"
	config_note="installed default $confdir/quartet.toml (binds loopback until [[users]] are configured)"
fi

# A listener on a port below 1024 needs CAP_NET_BIND_SERVICE, which the unit
# drops by default: grant it in a drop-in only when the config asks for one.
dropin=$unitdir/quartet.service.d
lowport=$(sed -n 's/^[[:space:]]*addr[[:space:]]*=[[:space:]]*"[^"]*:\([0-9][0-9]*\)".*/\1/p' "$confdir/quartet.toml" |
	awk '$1 > 0 && $1 < 1024 { print $1; exit }')
if [ -n "$lowport" ]; then
	install -d -m 0755 "$dropin"
	printf '%s\n' '# Written by install.sh: the config binds a port below 1024.' '[Service]' \
		'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
		'PrivateUsers=no' >"$dropin/10-low-ports.conf"
	chmod 0644 "$dropin/10-low-ports.conf"
elif [ -e "$dropin/10-low-ports.conf" ]; then
	rm -f "$dropin/10-low-ports.conf"
	rmdir "$dropin" 2>/dev/null || true
fi

if [ "$live" = yes ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers "$sysusersdir/quartet.conf"
	elif ! id quartet >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/quartet --no-create-home --shell /usr/sbin/nologin quartet
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
fi

cat <<MSG
Installed Quartet:
  $bindir/quartet
  $unitdir/quartet.service
  $sysctldir/90-quartet.conf
  $sysusersdir/quartet.conf
  $config_note
${lowport:+  $dropin/10-low-ports.conf (port $lowport < 1024: CAP_NET_BIND_SERVICE)
}
Next steps (as root):
  systemd-sysusers                # create the quartet user
  sysctl --system                 # apply the host profile
  systemctl daemon-reload
  systemctl enable --now quartet
  quartet doctor --config /etc/quartet/quartet.toml
MSG

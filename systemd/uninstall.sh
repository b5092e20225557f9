#!/bin/sh
# Remove what install.sh installed. Called by `make uninstall`.
# Environment: DESTDIR, PREFIX (as for install.sh).
# Leaves the data (/var/lib/quartet), the quartet user, and a modified config.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}

live=no
if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; then
	live=yes
fi
if [ "$live" = yes ] && [ -d /run/systemd/system ]; then
	systemctl disable --now quartet.service 2>/dev/null || true
fi

unitdir=$DESTDIR/etc/systemd/system
confdir=$DESTDIR/etc/quartet
rm -f "$DESTDIR$PREFIX/bin/quartet" \
	"$unitdir/quartet.service" \
	"$unitdir/quartet.service.d/10-low-ports.conf" \
	"$DESTDIR/etc/sysctl.d/90-quartet.conf" \
	"$DESTDIR/etc/sysusers.d/quartet.conf"
rmdir "$unitdir/quartet.service.d" 2>/dev/null || true

config_note="no config found"
if [ -e "$confdir/quartet.toml" ]; then
	if cmp -s "$confdir/quartet.toml" "$here/quartet.toml"; then
		rm -f "$confdir/quartet.toml"
		rmdir "$confdir" 2>/dev/null || true
		config_note="removed unmodified $confdir/quartet.toml"
	else
		config_note="kept modified $confdir/quartet.toml"
	fi
fi

if [ "$live" = yes ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi

cat <<MSG
Removed Quartet's binary, unit, sysctl profile and sysusers entry; $config_note.
Left in place: the data in /var/lib/quartet and the quartet user.
  rm -rf /var/lib/quartet && userdel quartet   # to remove them too
  sysctl --system                              # to reload the remaining sysctl profiles
MSG

// Package systemd holds the files that make Quartet a service on a systemd
// host, embedded so `quartet doctor` checks the host against exactly what
// ships:
//
//	quartet.service          unit: Type=notify, dedicated user, limits, sandbox
//	sysctl.d/90-quartet.conf host tuning profile (every line explained)
//	sysusers.d/quartet.conf  the quartet system user
//	quartet.toml             commented default config (/etc/quartet/quartet.toml)
//	install.sh, uninstall.sh `make install` / `make uninstall`
//	sandbox-check.sh         boots the host OS in a throwaway systemd-nspawn
//	                         container, runs quartet.service under its full
//	                         sandbox and the client tests against it (root)
//
// install.sh takes DESTDIR (default empty), PREFIX (default /usr/local) and
// BIN (default bin/quartet) from the environment and installs:
//
//	$DESTDIR$PREFIX/bin/quartet
//	$DESTDIR/etc/systemd/system/quartet.service   (ExecStart uses $PREFIX/bin)
//	$DESTDIR/etc/sysctl.d/90-quartet.conf
//	$DESTDIR/etc/sysusers.d/quartet.conf
//	$DESTDIR/etc/quartet/quartet.toml             (only if absent: never overwritten)
//
// uninstall.sh removes those files (the config only if unmodified) and
// leaves /var/lib/quartet and the user.
package systemd

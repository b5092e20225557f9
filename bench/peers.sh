#!/usr/bin/env bash
# Start and stop the peer brokers on loopback for quartet-bench (sourced by
# compare.sh; also usable by hand):
#   source bench/peers.sh
#   start_mosquitto PORT DIR   -> sets MOSQ_PID
#   start_rabbitmq PORT DIR    -> sets RABBIT_PID (the beam.smp process)
#   stop_rabbitmq DIR; kill "$MOSQ_PID"
# RabbitMQ notes (BENCHMARKING.md): setpriv instead of the Debian wrapper's su
# (which resets RLIMIT_NOFILE to 1024), loopback-only listener and epmd, its
# own node name, epmd port and data directory so it never meets another node.

free_port() { free_ports 1; }

# free_ports N: N distinct free loopback ports (all bound at once, so no repeats).
free_ports() {
	python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()' "$1"
}

wait_port() { # HOST PORT TIMEOUT_S
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

start_mosquitto() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir"
	cat >"$dir/mosquitto.conf" <<EOC
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
max_connections -1
EOC
	chmod 755 "$dir"
	mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
	MOSQ_PID=$!
	wait_port 127.0.0.1 "$port" 10 || { echo "mosquitto did not start:" >&2; cat "$dir/mosquitto.log" >&2; return 1; }
}

rabbit_env() { # DIR -> RENV (array of NAME=value for env -i)
	local dir=$1
	RENV=(HOME=/var/lib/rabbitmq PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
		RABBITMQ_NODENAME="$(cat "$dir/nodename")" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$(cat "$dir/port")" RABBITMQ_DIST_PORT="$(cat "$dir/distport")"
		ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$(cat "$dir/epmdport")"
		RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
		RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/rabbit.pid"
		RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
}

start_rabbitmq() { # PORT DIR
	local port=$1 dir=$2
	mkdir -p "$dir/mnesia" "$dir/log"
	echo "$port" >"$dir/port"
	local epmd dist
	read -r epmd dist < <(free_ports 2)
	echo "$epmd" >"$dir/epmdport"
	echo "$dist" >"$dir/distport"
	echo "qbench$port@localhost" >"$dir/nodename"
	echo "[]." >"$dir/enabled_plugins"
	echo "[]." >"$dir/advanced.config"
	: >"$dir/rabbitmq.conf"
	chown -R rabbitmq:rabbitmq "$dir"
	chmod 755 "$dir"
	rabbit_env "$dir"
	env -i "${RENV[@]}" setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
		/usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.log" 2>&1 &
	RABBIT_WRAPPER_PID=$!
	if ! wait_port 127.0.0.1 "$port" 90; then
		echo "rabbitmq did not start:" >&2
		tail -20 "$dir/server.log" >&2
		return 1
	fi
	RABBIT_PID=$(cat "$dir/rabbit.pid" 2>/dev/null)
	if [ -z "$RABBIT_PID" ]; then
		RABBIT_PID=$(pgrep -f "beam.smp.*qbench$port@localhost" | head -1)
	fi
	echo "$RABBIT_PID" >"$dir/beam.pid"
}

stop_rabbitmq() { # DIR
	local dir=$1 pid
	[ -f "$dir/nodename" ] || return 0
	pid=$(cat "$dir/beam.pid" 2>/dev/null)
	rabbit_env "$dir"
	env -i "${RENV[@]}" setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
		/usr/lib/rabbitmq/bin/rabbitmqctl -n "$(cat "$dir/nodename")" stop >/dev/null 2>&1 || true
	for _ in $(seq 50); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	# The node's own epmd (started on its private port) goes with it.
	local epid
	epid=$(ss -ltnpH "( sport = :$(cat "$dir/epmdport") )" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
	[ -n "$epid" ] && kill "$epid" 2>/dev/null
	[ -n "${RABBIT_WRAPPER_PID:-}" ] && wait "$RABBIT_WRAPPER_PID" 2>/dev/null
	return 0
}

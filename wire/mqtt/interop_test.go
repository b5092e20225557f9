package mqtt

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"quartet/engine"
	"quartet/netpoll"
	"quartet/segment"
)

// TestInteropScript runs test/interop/mqtt.sh (mosquitto clients, python
// paho, MQTT.js) against an in-process broker on TCP and WebSocket:
//
//	MQTT_INTEROP=1 go test -run TestInteropScript -v ./wire/mqtt/
func TestInteropScript(t *testing.T) {
	if os.Getenv("MQTT_INTEROP") == "" {
		t.Skip("set MQTT_INTEROP=1")
	}
	lg := testLogger()
	e, err := engine.Open(engine.Config{DataDir: t.TempDir(), Flush: segment.FlushSync, IO: segment.IOAuto}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv, err := New(e, Config{}, lg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ns, err := netpoll.NewServer(netpoll.Config{Logger: lg}, []netpoll.Listener{
		{Addr: "127.0.0.1:0", Protocol: srv.Protocol()},
		{Addr: "127.0.0.1:0", Protocol: srv.Protocol(), WebSocket: &netpoll.WebSocketConfig{Path: "/mqtt", Subprotocols: []string{"mqtt"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ns.Stop(ctx)
	}()
	addrs := ns.ListenerAddrs()
	cmd := exec.Command("../../test/interop/mqtt.sh", addrs[0].String(), addrs[1].String())
	cmd.Env = append(os.Environ(), "MQTT_ADDR="+addrs[0].String(), "MQTT_WS_ADDR="+addrs[1].String())
	out, err := cmd.CombinedOutput()
	t.Logf("\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

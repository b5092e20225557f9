package netpoll

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WebSocket over TLS (wss) round trip, with subprotocol negotiation.
func TestWSS(t *testing.T) {
	tc, err := testTLS()
	if err != nil {
		t.Fatal(err)
	}
	h := &testHandler{}
	p := &Protocol{Name: "mqtt", Framer: LengthPrefixed32(1 << 20), Handler: h}
	srv, err := NewServer(Config{}, []Listener{{Addr: "127.0.0.1:0", Protocol: p, TLS: tc,
		WebSocket: &WebSocketConfig{Path: "/mqtt", Subprotocols: []string{"mqtt"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	wc, resp, err := websocket.Dial(ctx, "wss://"+srv.ListenerAddrs()[0].String()+"/mqtt",
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.CloseNow()
	if resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" || wc.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q", wc.Subprotocol())
	}
	// Two frames in one message, then one frame split over two messages.
	a, b := frame([]byte("E one")...), frame([]byte("E two")...)
	if err := wc.Write(ctx, websocket.MessageBinary, append(append([]byte(nil), a...), b...)); err != nil {
		t.Fatal(err)
	}
	c := frame([]byte("E three")...)
	_ = wc.Write(ctx, websocket.MessageBinary, c[:3])
	_ = wc.Write(ctx, websocket.MessageBinary, c[3:])
	var got []byte
	for len(got) < len(a)+len(b)+len(c) {
		typ, m, err := wc.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("message type %v", typ)
		}
		got = append(got, m...)
	}
	want := append(append(append([]byte(nil), a...), b...), c...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	if st := srv.Stats()[0]; st.Transport != "wss" || st.FramesIn != 3 {
		t.Fatalf("stats %+v", st)
	}
}

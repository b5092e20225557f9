package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"quartet/appliance/metrics"
)

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestServer(t *testing.T) {
	reg := metrics.NewRegistry()
	c := reg.Counter(metrics.MessagesInTotal, "Messages in.", metrics.L("protocol", "kafka"))
	s := New(Config{Addr: "127.0.0.1:0"}, reg, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.Addr().String()

	if code, _, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatal(code, body)
	}
	if code, _, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not ready") {
		t.Fatal(code, body)
	}
	s.SetReady(true)
	if code, _, body := get(t, base+"/readyz"); code != 200 {
		t.Fatal(code, body)
	}
	fail := errors.New("disk free 1MiB below 256MiB")
	s.AddCheck("disk", func() error { return fail })
	if code, _, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "disk: disk free") {
		t.Fatal(code, body)
	}
	fail = nil
	s.AddCheck("disk", func() error { return nil })

	c.Add(3)
	code, ctype, body := get(t, base+"/metrics")
	if code != 200 || ctype != metrics.ContentType {
		t.Fatal(code, ctype)
	}
	for _, want := range []string{`quartet_messages_in_total{protocol="kafka"} 3`, "quartet_ready 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	c.Inc()
	if _, _, body := get(t, base+"/metrics"); !strings.Contains(body, `quartet_messages_in_total{protocol="kafka"} 4`) {
		t.Errorf("counter did not move:\n%s", body)
	}
	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatal(resp.StatusCode)
	}
}

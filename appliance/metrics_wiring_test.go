package appliance

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"quartet/appliance/metrics"
)

type fakeCounted struct{ in, out uint64 }

func (f *fakeCounted) MessageCounts() (in, out uint64) { return f.in, f.out }

type fakeUncounted struct{}

// A server with MessageCounts is exported per protocol, read at every
// scrape; one without it gets no series and a warning naming it.
func TestMessageMetrics(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	p := &protocolSet{}
	amqp := &fakeCounted{in: 3, out: 5}
	p.countMessages("amqp", amqp, logger)
	p.countMessages("mqtt", fakeUncounted{}, logger)
	reg := metrics.NewRegistry()
	registerMessageMetrics(reg, p.counted)

	amqp.in, amqp.out = 7, 11
	e := reg.Gather()
	for name, want := range map[string]float64{metrics.MessagesInTotal: 7, metrics.MessagesOutTotal: 11} {
		if v, ok := e.Value(name, metrics.L("protocol", "amqp")); !ok || v != want {
			t.Errorf("%s{protocol=amqp} = %v, %v; want %v", name, v, ok, want)
		}
		if _, ok := e.Value(name, metrics.L("protocol", "mqtt")); ok {
			t.Errorf("%s{protocol=mqtt} exported for a server without MessageCounts", name)
		}
	}
	if !strings.Contains(logs.String(), "protocol=mqtt") || strings.Contains(logs.String(), "protocol=amqp") {
		t.Errorf("warnings: %s", logs.String())
	}
	var text bytes.Buffer
	if err := reg.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"# TYPE quartet_messages_in_total counter",
		`quartet_messages_in_total{protocol="amqp"} 7`,
		`quartet_messages_out_total{protocol="amqp"} 11`,
	} {
		if !strings.Contains(text.String(), line+"\n") {
			t.Errorf("no line %q in:\n%s", line, text.String())
		}
	}
}

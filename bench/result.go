package bench

import (
	"time"
)

// Result is one run against one target.
type Result struct {
	Config   Config    `json:"config"`
	Round    int       `json:"round,omitempty"`
	Start    time.Time `json:"start"`
	Hardware string    `json:"hardware"`

	Sent       int64   `json:"sent"`        // whole run
	SentWindow int64   `json:"sent_window"` // inside the measured window
	Received   int64   `json:"received"`
	RecvWindow int64   `json:"received_window"`
	Expected   int64   `json:"expected"` // deliveries the sent messages should produce
	Dropped    int64   `json:"dropped"`  // expected - received (never negative)
	DropPct    float64 `json:"drop_pct"`
	Duplicates int64   `json:"duplicates,omitempty"` // received beyond expected

	SendRate      float64 `json:"send_rate"`      // msgs/s published in the window
	DeliveredRate float64 `json:"delivered_rate"` // msgs/s consumed in the window
	SendMBps      float64 `json:"send_mbps"`      // payload MB/s (10^6)
	DeliveredMBps float64 `json:"delivered_mbps"`
	WireMBps      float64 `json:"wire_mbps,omitempty"` // ceiling runs: bytes on the wire

	Latency    Latency `json:"latency"`     // publish-to-consume
	AckLatency Latency `json:"ack_latency"` // publish-to-acknowledgement (puback, confirm, produce/send response)

	BrokerCPU        float64 `json:"broker_cpu_s,omitempty"` // CPU seconds inside the window
	BrokerCPUPct     float64 `json:"broker_cpu_pct,omitempty"`
	BrokerRSSPeak    int64   `json:"broker_rss_peak,omitempty"`       // bytes, sampled every 100 ms
	BrokerHWM        int64   `json:"broker_hwm,omitempty"`            // VmHWM, since the broker started
	MsgsPerBrokerCPU float64 `json:"msgs_per_broker_cpu_s,omitempty"` // (in + out) per broker CPU-second
	GenCPU           float64 `json:"gen_cpu_s"`
	GenCPUPct        float64 `json:"gen_cpu_pct"`

	LoadAvg float64 `json:"loadavg_1m"` // machine load at the end of the run (other work competes for 2 cores)

	Errors int64  `json:"errors"`
	Error  string `json:"error,omitempty"`
}

// fill derives the result from the children's final events.
func (r *Result) fill(c *Config, pub, sub event) {
	r.Sent, r.SentWindow = pub.Sent, pub.SentWindow
	r.Received, r.RecvWindow = sub.Recv, sub.RecvWindow
	secs := c.Duration.Seconds()
	if c.Producers == 0 && sub.LastNs > 0 {
		// Consume-only: everything read, from start to the last record.
		secs = time.Unix(0, sub.LastNs).Sub(r.Start).Seconds()
		r.RecvWindow = sub.Recv
	}
	if c.Consumers > 0 {
		if r.Expected > r.Received {
			r.Dropped = r.Expected - r.Received
		} else {
			r.Duplicates = r.Received - r.Expected
		}
		if r.Expected > 0 {
			r.DropPct = 100 * float64(r.Dropped) / float64(r.Expected)
		}
	}
	if secs > 0 {
		r.SendRate = float64(r.SentWindow) / secs
		r.DeliveredRate = float64(r.RecvWindow) / secs
		r.SendMBps = r.SendRate * float64(c.Size) / 1e6
		r.DeliveredMBps = r.DeliveredRate * float64(c.Size) / 1e6
		r.BrokerCPUPct = 100 * r.BrokerCPU / secs
		r.GenCPUPct = 100 * r.GenCPU / secs
	}
	if r.BrokerCPU > 0 {
		r.MsgsPerBrokerCPU = float64(r.SentWindow+r.RecvWindow) / r.BrokerCPU
	}
	r.LoadAvg = loadAvg()
	r.Latency = summarize(mergeHists(sub.Hist))
	r.AckLatency = summarize(mergeHists(pub.AckHist))
	r.Errors = pub.Errors + sub.Errors
	if pub.Error != "" {
		r.Error = "publish: " + pub.Error
	} else if sub.Error != "" {
		r.Error = "consume: " + sub.Error
	}
}

package appliance

import (
	"log/slog"

	"quartet/engine"
)

// startProtocols builds the wire server of every protocol that has an
// enabled listener and collects its netpoll listeners. A protocol whose
// package is not built yet is not opened, and the log says so.
func startProtocols(eng *engine.Engine, cfg *Config, logger *slog.Logger) (*protocolSet, error) {
	p := &protocolSet{}
	ls := &cfg.Listeners
	for _, nl := range ls.All() {
		if !nl.Enabled() || nl.Protocol == "http" {
			continue
		}
		logger.Warn("listener not opened: protocol not built yet", "listener", nl.Name, "addr", nl.Addr)
	}
	return p, nil
}

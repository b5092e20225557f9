// Package httpapi is the appliance's admin HTTP listener (default
// 127.0.0.1:8080):
//
//	GET /metrics   Prometheus text format from a metrics.Registry
//	GET /healthz   200 "ok" while the process serves HTTP (liveness)
//	GET /readyz    200 "ready" once SetReady(true) was called and every
//	               readiness check passes; 503 with the reasons otherwise
//	               (starting, stopping, a failing check such as low disk)
//
// Serve (appliance/serve.go) creates one Server, registers its collectors
// on the registry, calls Start before the protocol listeners, SetReady(true)
// after they all accept, SetReady(false) when shutdown begins, and Shutdown
// last.
package httpapi

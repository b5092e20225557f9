// Package smoketest holds the end-to-end smoke tests of quartet-bench: each
// protocol's load generator runs for one second against an in-process Quartet
// appliance on ephemeral loopback ports. It has no non-test code.
package smoketest

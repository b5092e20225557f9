// Command quartet-bench is the load generator and benchmark reporter for
// Quartet and its peer brokers. See bench/README.md.
package main

import (
	"os"

	"quartet/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:]))
}

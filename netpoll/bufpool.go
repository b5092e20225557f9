package netpoll

import (
	"math/bits"
	"sync"
)

// Output buffers are pooled by power-of-two capacity class so that an idle
// connection holds none and a busy one reuses them.
const (
	bufClassMin = 9  // 512 B
	bufClassMax = 22 // 4 MiB; larger buffers are not pooled
)

var bufPools [bufClassMax + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<bufClassMin {
		return bufClassMin
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns an empty slice with capacity at least n.
func getBuf(n int) []byte {
	c := bufClass(n)
	if c > bufClassMax {
		return make([]byte, 0, n)
	}
	if v := bufPools[c].Get(); v != nil {
		return (*v.(*[]byte))[:0]
	}
	return make([]byte, 0, 1<<c)
}

// putBuf returns b to its pool; b must not be used afterwards.
func putBuf(b []byte) {
	c := cap(b)
	if c < 1<<bufClassMin || c&(c-1) != 0 {
		return // not one of ours (grown by append) — let the GC have it
	}
	cl := bits.Len(uint(c)) - 1
	if cl > bufClassMax {
		return
	}
	b = b[:0]
	bufPools[cl].Put(&b)
}

// appendBuf appends p to b, moving to a pooled buffer of the next class when
// b is full.
func appendBuf(b, p []byte) []byte {
	if len(b)+len(p) <= cap(b) {
		return append(b, p...)
	}
	nb := getBuf(len(b) + len(p))
	nb = append(nb, b...)
	nb = append(nb, p...)
	if b != nil {
		putBuf(b)
	}
	return nb
}

package mqtt

import (
	"fmt"

	"quartet/netpoll"
)

// Framer delimits MQTT packets: one fixed-header byte, a remaining length of
// 1–4 varint bytes, then that many bytes. It returns 0 until buf holds the
// whole packet, and never allocates.
func Framer(buf []byte) (int, error) {
	n, err := packetLen(buf)
	if n > len(buf) {
		return 0, err
	}
	return n, err
}

// packetLen is the length of the packet starting buf as soon as its fixed
// header is complete (it may exceed len(buf)); 0 before that.
func packetLen(buf []byte) (int, error) {
	if len(buf) < 2 {
		return 0, nil
	}
	rl := 0
	for i := 1; i < 5; i++ {
		if i >= len(buf) {
			return 0, nil
		}
		c := buf[i]
		rl |= int(c&0x7f) << (7 * (i - 1))
		if c&0x80 == 0 {
			return 1 + i + rl, nil
		}
	}
	return 0, fmt.Errorf("%w: remaining length longer than 4 bytes", netpoll.ErrMalformedFrame)
}

// framerMax returns a Framer refusing frames longer than maxBytes early (before
// they are buffered).
func framerMax(maxBytes int) netpoll.Framer {
	return func(buf []byte) (int, error) {
		n, err := packetLen(buf)
		if err == nil && n > maxBytes {
			return 0, fmt.Errorf("%w: %d bytes > %d", netpoll.ErrFrameTooLarge, n, maxBytes)
		}
		if n > len(buf) {
			return 0, err
		}
		return n, err
	}
}

package netpoll

import (
	"encoding/binary"
	"fmt"
)

// LengthPrefixed32 returns a Framer for frames made of a 4-byte big-endian
// length (not counting itself) followed by that many bytes, as Kafka and
// RocketMQ use. The frame handed to OnFrame includes the 4-byte prefix.
// Frames whose total length exceeds frameBytesMax fail with ErrFrameTooLarge;
// a negative length fails with ErrMalformedFrame.
func LengthPrefixed32(frameBytesMax int) Framer {
	return func(buf []byte) (int, error) {
		if len(buf) < 4 {
			return 0, nil
		}
		l := int64(int32(binary.BigEndian.Uint32(buf)))
		if l < 0 {
			return 0, fmt.Errorf("%w: negative length %d", ErrMalformedFrame, l)
		}
		total := l + 4
		if frameBytesMax > 0 && total > int64(frameBytesMax) {
			return 0, fmt.Errorf("%w: %d bytes > %d", ErrFrameTooLarge, total, frameBytesMax)
		}
		if int64(len(buf)) < total {
			return 0, nil
		}
		return int(total), nil
	}
}

// LengthPrefixed32Needed is the FrameBytesNeeded of LengthPrefixed32 frames.
func LengthPrefixed32Needed(prefix []byte) int {
	if len(prefix) < 4 {
		return 0
	}
	l := int32(binary.BigEndian.Uint32(prefix))
	if l < 0 {
		return 0 // the Framer reports the error
	}
	return int(l) + 4
}

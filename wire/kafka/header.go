package kafka

import (
	"encoding/binary"
	"fmt"
)

// request is one decoded request header plus the undecoded body. clientID and
// body alias the frame and are valid only during OnFrame.
type request struct {
	key      int16
	version  int16
	corr     int32
	clientID string
	flexible bool
	body     []byte
}

// parseHeader decodes a whole frame (4-byte size prefix included):
//
//	size int32 | api_key int16 | api_version int16 | correlation_id int32 |
//	client_id nullable string (int16 length, also in flexible headers) |
//	tagged fields (flexible versions only: request header v2)
//
// It fails for keys and versions we do not serve, except ApiVersions, whose
// too-new versions are answered per KIP-511 (and whose header is decoded as
// flexible, since v3+ is).
func parseHeader(frame []byte) (request, error) {
	var rq request
	if len(frame) < 4+8 {
		return rq, fmt.Errorf("%w: %d-byte frame", ErrShortRequest, len(frame))
	}
	if int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
		return rq, fmt.Errorf("%w: frame size mismatch", ErrBadLength)
	}
	r := reader{b: frame[4:]}
	rq.key = r.int16()
	rq.version = r.int16()
	rq.corr = r.int32()
	if rq.key < 0 || int(rq.key) >= len(supported) || !supported[rq.key].ok {
		return rq, fmt.Errorf("%w: api key %d", ErrUnsupported, rq.key)
	}
	vr := supported[rq.key]
	if rq.key == keyApiVersions {
		rq.flexible = rq.version >= 3
	} else {
		if rq.version < vr.min || rq.version > vr.max {
			return rq, fmt.Errorf("%w: api key %d version %d (we serve %d-%d)", ErrUnsupported, rq.key, rq.version, vr.min, vr.max)
		}
		rq.flexible = rq.version >= vr.flexMin
	}
	id, _ := r.nullableStr(false)
	rq.clientID = id
	r.tags(rq.flexible)
	if r.err != nil {
		if rq.key == keyApiVersions && rq.version > vr.max {
			// The reply needs only the correlation id.
			return rq, nil
		}
		return rq, r.err
	}
	rq.body = r.b
	return rq, nil
}

package kafka

// ApiVersions — versions 0–3 (KIP-511: a request above v3 is answered with a
// v0-encoded response carrying UNSUPPORTED_VERSION and our ranges).
//
// The table below is what we advertise; a key absent from it is not served
// and a request for it closes the connection, as Kafka does.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// API keys we serve.
const (
	keyProduce                 = 0
	keyFetch                   = 1
	keyListOffsets             = 2
	keyMetadata                = 3
	keyOffsetCommit            = 8
	keyOffsetFetch             = 9
	keyFindCoordinator         = 10
	keyJoinGroup               = 11
	keyHeartbeat               = 12
	keyLeaveGroup              = 13
	keySyncGroup               = 14
	keyDescribeGroups          = 15
	keyListGroups              = 16
	keyApiVersions             = 18
	keyCreateTopics            = 19
	keyDeleteTopics            = 20
	keyDeleteRecords           = 21
	keyInitProducerID          = 22
	keyOffsetForLeaderEpoch    = 23
	keyDescribeConfigs         = 32
	keyAlterConfigs            = 33
	keyDescribeLogDirs         = 35
	keyCreatePartitions        = 37
	keyDeleteGroups            = 42
	keyIncrementalAlterConfigs = 44
	keyOffsetDelete            = 47
	keyDescribeCluster         = 60
	keysMax                    = 75
)

// Kafka error codes used by the handlers.
const (
	errNone                     int16 = 0
	errOffsetOutOfRange         int16 = 1
	errCorruptMessage           int16 = 2
	errUnknownTopicOrPartition  int16 = 3
	errInvalidFetchSize         int16 = 4
	errLeaderNotAvailable       int16 = 5
	errRequestTimedOut          int16 = 7
	errMessageTooLarge          int16 = 10
	errCoordinatorNotAvailable  int16 = 15
	errNotCoordinator           int16 = 16
	errInvalidTopicException    int16 = 17
	errRecordListTooLarge       int16 = 18
	errInvalidRequiredAcks      int16 = 21
	errUnsupportedVersion       int16 = 35
	errTopicAlreadyExists       int16 = 36
	errInvalidPartitions        int16 = 37
	errInvalidReplicationFactor int16 = 38
	errInvalidRequest           int16 = 42
	errInvalidConfig            int16 = 40
	errOutOfOrderSequence       int16 = 45
	errDuplicateSequence        int16 = 46
	errInvalidProducerEpoch     int16 = 47
	errInvalidTxnState          int16 = 48
	errUnsupportedForMessageFmt int16 = 43
	errKafkaStorageError        int16 = 56
	errUnknownProducerID        int16 = 59
	errFetchSessionIDNotFound   int16 = 70
	errInvalidRecord            int16 = 87
	errUnknownServerError       int16 = -1
	errTransactionalIDAuthFail  int16 = 53
	errGroupIDNotFound          int16 = 69
	errGroupSubscribedToTopic   int16 = 86
	errPolicyViolation          int16 = 44
	errInvalidReplicaAssignment int16 = 39
	errUnknownTopicID           int16 = 100
	errGroupAuthFailed          int16 = 30
)

type versionRange struct {
	min, max int16
	ok       bool
	flexMin  int16 // first flexible version (max+1 if none)
}

// supported is indexed by API key.
var supported [keysMax]versionRange

// advertised lists what we serve; handlers register here.
var advertised = []struct {
	key      int16
	min, max int16
}{
	{keyProduce, 3, 9},
	{keyFetch, 4, 12},
	{keyListOffsets, 0, 6},
	{keyMetadata, 0, 12},
	{keyOffsetCommit, 0, 8},
	{keyOffsetFetch, 0, 8},
	{keyFindCoordinator, 0, 4},
	{keyJoinGroup, 0, 9},
	{keyHeartbeat, 0, 4},
	{keyLeaveGroup, 0, 5},
	{keySyncGroup, 0, 5},
	{keyDescribeGroups, 0, 5},
	{keyListGroups, 0, 4},
	{keyApiVersions, 0, 3},
	{keyCreateTopics, 0, 7},
	{keyDeleteTopics, 0, 6},
	{keyDeleteRecords, 0, 2},
	{keyInitProducerID, 0, 4},
	{keyOffsetForLeaderEpoch, 0, 4},
	{keyDescribeConfigs, 0, 4},
	{keyAlterConfigs, 0, 2},
	{keyDescribeLogDirs, 0, 4},
	{keyCreatePartitions, 0, 3},
	{keyDeleteGroups, 0, 2},
	{keyIncrementalAlterConfigs, 0, 1},
	{keyOffsetDelete, 0, 0},
	{keyDescribeCluster, 0, 1},
}

// apiVersionsKeys is the ApiVersions response's key list.
var apiVersionsKeys []kmsg.ApiVersionsResponseApiKey

func init() {
	for _, a := range advertised {
		req := kmsg.RequestForKey(a.key)
		if req == nil || req.MaxVersion() < a.max {
			panic("BUG: kmsg does not know kafka api " + kmsg.NameForKey(a.key))
		}
		vr := versionRange{min: a.min, max: a.max, ok: true, flexMin: a.max + 1}
		for v := a.max; v >= 0; v-- {
			req.SetVersion(v)
			if req.IsFlexible() {
				vr.flexMin = v
			}
		}
		supported[a.key] = vr
		apiVersionsKeys = append(apiVersionsKeys, kmsg.ApiVersionsResponseApiKey{
			ApiKey: a.key, MinVersion: a.min, MaxVersion: a.max})
	}
}

func (s *Server) handleApiVersions(c *connState, rq *request) error {
	resp := kmsg.NewPtrApiVersionsResponse()
	vr := supported[keyApiVersions]
	if rq.version > vr.max {
		// KIP-511: answer v0 with our ranges so the client can retry.
		resp.Version = 0
		resp.ErrorCode = errUnsupportedVersion
		resp.ApiKeys = apiVersionsKeys
		c.writeResponse(rq, resp, 0)
		return nil
	}
	resp.ApiKeys = apiVersionsKeys
	if rq.version >= 3 {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = rq.version
		if err := req.ReadFrom(rq.body); err != nil {
			return err
		}
	}
	c.writeResponse(rq, resp, rq.version)
	return nil
}

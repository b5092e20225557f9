package kafka

// Consumer-group APIs (classic protocol), served by engine/group:
// FindCoordinator v0–4, JoinGroup v0–9, SyncGroup v0–5, Heartbeat v0–4,
// LeaveGroup v0–5, DescribeGroups v0–5, ListGroups v0–4, DeleteGroups v0–2,
// OffsetCommit v0–8, OffsetFetch v0–8, OffsetDelete v0.
//
// Differences from Kafka: this node is the coordinator of every group;
// transaction coordinators (FindCoordinator key type 1) are not served
// (COORDINATOR_NOT_AVAILABLE) since transactions are not advertised.

import (
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"quartet/engine/group"
)

func (s *Server) handleFindCoordinator(cs *connState, rq *request) error {
	req := kmsg.NewPtrFindCoordinatorRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := s.advertised(cs.c)
	one := func(key string) (int16, *string) {
		if req.CoordinatorType != 0 {
			msg := "transactions are not supported"
			return errCoordinatorNotAvailable, &msg
		}
		if key == "" {
			return group.ErrInvalidGroupID, nil
		}
		return errNone, nil
	}
	if rq.version >= 4 {
		for _, k := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = k
			c.ErrorCode, c.ErrorMessage = one(k)
			if c.ErrorCode == errNone {
				c.NodeID, c.Host, c.Port = s.cfg.NodeID, host, port
			} else {
				c.NodeID, c.Port = -1, -1
			}
			resp.Coordinators = append(resp.Coordinators, c)
		}
	} else {
		resp.ErrorCode, resp.ErrorMessage = one(req.CoordinatorKey)
		if resp.ErrorCode == errNone {
			resp.NodeID, resp.Host, resp.Port = s.cfg.NodeID, host, port
		} else {
			resp.NodeID, resp.Port = -1, -1
		}
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleJoinGroup(cs *connState, rq *request) error {
	rqv := *rq // used after OnFrame returns; cs.rq is reused
	rq = &rqv
	req := kmsg.NewPtrJoinGroupRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	jr := group.JoinRequest{
		Group:                req.Group,
		MemberID:             req.MemberID,
		InstanceID:           req.InstanceID,
		ClientID:             string([]byte(rq.clientID)),
		ClientHost:           cs.host,
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:         req.ProtocolType,
		RequireKnownMemberID: rq.version >= 4,
	}
	if rq.version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	p := cs.later(rq)
	s.groups.Join(jr, func(r group.JoinResult) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = r.Err
		resp.Generation = r.Generation
		resp.MemberID = r.MemberID
		resp.LeaderID = r.Leader
		resp.SkipAssignment = r.SkipAssignment && rq.version >= 9
		if r.Err == errNone {
			pt, pn := r.ProtocolType, r.Protocol
			resp.ProtocolType, resp.Protocol = &pt, &pn
		}
		if r.SkipAssignment && rq.version < 9 {
			// Old clients cannot skip: the static leader re-assigns as usual.
			resp.SkipAssignment = false
		}
		for _, m := range r.Members {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID, jm.ProtocolMetadata = m.MemberID, m.InstanceID, m.Metadata
			resp.Members = append(resp.Members, jm)
		}
		p.respond(resp)
	})
	return nil
}

func (s *Server) handleSyncGroup(cs *connState, rq *request) error {
	req := kmsg.NewPtrSyncGroupRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	sr := group.SyncRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID,
		Generation: req.Generation, ProtocolType: req.ProtocolType, Protocol: req.Protocol}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			sr.Assignments[a.MemberID] = a.MemberAssignment
		}
	}
	p := cs.later(rq)
	s.groups.Sync(sr, func(r group.SyncResult) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = r.Err
		if r.Err == errNone {
			pt, pn := r.ProtocolType, r.Protocol
			resp.ProtocolType, resp.Protocol = &pt, &pn
		}
		resp.MemberAssignment = r.Assignment
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		p.respond(resp)
	})
	return nil
}

func (s *Server) handleHeartbeat(cs *connState, rq *request) error {
	req := kmsg.NewPtrHeartbeatRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = s.groups.Heartbeat(req.Group, req.MemberID, req.InstanceID, req.Generation)
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleLeaveGroup(cs *connState, rq *request) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if rq.version < 3 {
		code, errs := s.groups.Leave(req.Group, []group.LeaveMember{{MemberID: req.MemberID}})
		resp.ErrorCode = code
		if code == errNone {
			resp.ErrorCode = errs[0]
		}
	} else {
		ms := make([]group.LeaveMember, len(req.Members))
		for i, m := range req.Members {
			ms[i] = group.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID}
		}
		code, errs := s.groups.Leave(req.Group, ms)
		resp.ErrorCode = code
		for i, m := range req.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, errs[i]
			resp.Members = append(resp.Members, rm)
		}
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleDescribeGroups(cs *connState, rq *request) error {
	req := kmsg.NewPtrDescribeGroupsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		d := s.groups.Describe(name)
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group, g.ErrorCode, g.State = name, d.Err, d.State.String()
		g.ProtocolType, g.Protocol = d.ProtocolType, d.Protocol
		g.AuthorizedOperations = -2147483648
		for _, m := range d.Members {
			gm := kmsg.NewDescribeGroupsResponseGroupMember()
			gm.MemberID, gm.InstanceID, gm.ClientID, gm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
			gm.ProtocolMetadata, gm.MemberAssignment = m.Metadata, m.Assignment
			if gm.ProtocolMetadata == nil {
				gm.ProtocolMetadata = []byte{}
			}
			if gm.MemberAssignment == nil {
				gm.MemberAssignment = []byte{}
			}
			g.Members = append(g.Members, gm)
		}
		resp.Groups = append(resp.Groups, g)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleListGroups(cs *connState, rq *request) error {
	req := kmsg.NewPtrListGroupsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, g := range s.groups.List() {
		if len(req.StatesFilter) > 0 {
			match := false
			for _, st := range req.StatesFilter {
				if st == g.State.String() {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState = g.Name, g.ProtocolType, g.State.String()
		resp.Groups = append(resp.Groups, lg)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

func (s *Server) handleDeleteGroups(cs *connState, rq *request) error {
	req := kmsg.NewPtrDeleteGroupsRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	p := cs.later(rq)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	resp.Groups = make([]kmsg.DeleteGroupsResponseGroup, len(req.Groups))
	left := len(req.Groups)
	if left == 0 {
		p.respond(resp)
		return nil
	}
	var n atomic.Int32
	n.Store(int32(left))
	for i, name := range req.Groups {
		g := &resp.Groups[i]
		*g = kmsg.NewDeleteGroupsResponseGroup()
		g.Group = name
	}
	for i, name := range req.Groups {
		g := &resp.Groups[i]
		s.groups.Delete(name, func(code int16) {
			g.ErrorCode = code
			if n.Add(-1) == 0 {
				p.respond(resp)
			}
		})
	}
	return nil
}

func (s *Server) handleOffsetCommit(cs *connState, rq *request) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	cr := group.CommitRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID, Generation: req.Generation}
	if rq.version == 0 {
		cr.Generation = -1
	}
	type ref struct{ t, p int }
	var refs []ref
	for ti, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		topic, ok := s.e.Topic(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if !ok || p.Partition < 0 || int(p.Partition) >= len(topic.Partitions()) {
				rp.ErrorCode = errUnknownTopicOrPartition
			} else {
				md := ""
				if p.Metadata != nil {
					md = *p.Metadata
				}
				cr.Offsets = append(cr.Offsets, group.OffsetCommit{
					TopicPartition: group.TopicPartition{Topic: t.Topic, Partition: p.Partition},
					Offset:         group.Offset{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: md},
				})
				refs = append(refs, ref{ti, len(rt.Partitions)})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(cr.Offsets) == 0 {
		cs.writeResponse(rq, resp, rq.version)
		return nil
	}
	p := cs.later(rq)
	s.groups.Commit(cr, func(errs []int16) {
		for i, r := range refs {
			resp.Topics[r.t].Partitions[r.p].ErrorCode = errs[i]
		}
		p.respond(resp)
	})
	return nil
}

func (s *Server) handleOffsetFetch(cs *connState, rq *request) error {
	req := kmsg.NewPtrOffsetFetchRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if rq.version >= 8 {
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			var ts []kmsg.OffsetFetchRequestTopic
			if g.Topics != nil {
				ts = make([]kmsg.OffsetFetchRequestTopic, 0, len(g.Topics))
				for _, t := range g.Topics {
					ts = append(ts, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			for _, t := range s.fetchOffsets(g.Group, ts, g.Topics == nil) {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
	} else {
		resp.Topics = s.fetchOffsets(req.Group, req.Topics, req.Topics == nil && rq.version >= 2)
	}
	cs.writeResponse(rq, resp, rq.version)
	return nil
}

// fetchOffsets answers OffsetFetch for one group; all means every committed
// offset of the group (null topics, v2+).
func (s *Server) fetchOffsets(groupID string, topics []kmsg.OffsetFetchRequestTopic, all bool) []kmsg.OffsetFetchResponseTopic {
	var parts []group.TopicPartition
	if !all {
		parts = []group.TopicPartition{}
		for _, t := range topics {
			for _, p := range t.Partitions {
				parts = append(parts, group.TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
	}
	got := s.groups.Fetch(groupID, parts)
	var out []kmsg.OffsetFetchResponseTopic
	idx := map[string]int{}
	add := func(tp group.TopicPartition, o group.Offset) {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(out)
			idx[tp.Topic] = i
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = tp.Topic
			out = append(out, rt)
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, o.Offset, o.LeaderEpoch
		md := o.Metadata
		rp.Metadata = &md
		out[i].Partitions = append(out[i].Partitions, rp)
	}
	if all {
		for tp, o := range got {
			add(tp, o)
		}
		return out
	}
	for _, tp := range parts {
		add(tp, got[tp])
	}
	return out
}

func (s *Server) handleOffsetDelete(cs *connState, rq *request) error {
	req := kmsg.NewPtrOffsetDeleteRequest()
	if err := decode(rq, req); err != nil {
		return err
	}
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if !s.groups.Exists(req.Group) {
		resp.ErrorCode = errGroupIDNotFound
		cs.writeResponse(rq, resp, rq.version)
		return nil
	}
	subscribed := s.subscribedTopics(req.Group)
	var parts []group.TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if subscribed[t.Topic] {
				rp.ErrorCode = errGroupSubscribedToTopic
			} else {
				parts = append(parts, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	p := cs.later(rq)
	s.groups.DeleteOffsets(req.Group, parts, func(err error) {
		if err != nil {
			resp.ErrorCode = errKafkaStorageError
		}
		p.respond(resp)
	})
	return nil
}

// subscribedTopics returns the topics a consumer group's members subscribe to.
func (s *Server) subscribedTopics(groupID string) map[string]bool {
	pt, mds, ok := s.groups.Subscribed(groupID)
	out := map[string]bool{}
	if !ok || pt != "consumer" {
		return out
	}
	for _, md := range mds {
		var m kmsg.ConsumerMemberMetadata
		if m.ReadFrom(md) != nil {
			continue
		}
		for _, t := range m.Topics {
			out[t] = true
		}
	}
	return out
}

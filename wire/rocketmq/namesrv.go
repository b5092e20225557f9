package rocketmq

import (
	"errors"
	"sort"
	"strconv"
	"strings"
)

// Name server: GET_ROUTEINFO_BY_TOPIC (105), GET_BROKER_CLUSTER_INFO (106),
// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206). There is one broker (this
// process), so every route names it. brokerAddrs is written as compact JSON:
// the Go client splits its text on ',' and ':' and breaks on spaces.

func (s *Server) nameServer(cmd *Command) *Out {
	switch cmd.Code {
	case codeGetRouteInfoByTopic:
		return s.routeInfo(cmd)
	case codeGetBrokerClusterInfo:
		out := respond(cmd, respSuccess, "")
		out.Body = s.clusterInfo()
		return out
	case codeGetAllTopicListFromNS:
		out := respond(cmd, respSuccess, "")
		b := []byte(`{"topicList":[`)
		names := s.topicNames()
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, n)
		}
		out.Body = append(b, "]}"...)
		return out
	}
	return notSupported(cmd)
}

func (s *Server) topicNames() []string {
	var names []string
	for _, t := range s.cl.Topics() {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return names
}

func (s *Server) routeInfo(cmd *Command) *Out {
	name := cmd.Str("topic")
	create := s.cfg.AutoCreateTopics
	// Clients ask for topics that are not theirs to create ("%RETRY%" topics
	// of consumer groups are created with one queue, like the Java broker).
	queues := 0
	if strings.HasPrefix(name, prefixRetry) || strings.HasPrefix(name, prefixDLQ) {
		create, queues = true, 1
	}
	t, err := s.topic(name, create, queues)
	if err != nil {
		if errors.Is(err, errTopicNotExist) || errors.Is(err, errIllegal) {
			return respond(cmd, respTopicNotExist, "No topic route info in name server for the topic: "+name)
		}
		s.log.Warn("route: topic", "topic", name, "err", err)
		return respond(cmd, respSystemError, err.Error())
	}
	out := respond(cmd, respSuccess, "")
	out.Body = s.appendRoute(nil, t.Queues())
	return out
}

// appendRoute renders TopicRouteData for a topic of n queues.
func (s *Server) appendRoute(b []byte, n int) []byte {
	b = append(b, `{"orderTopicConf":"","queueDatas":[{"brokerName":`...)
	b = appendJSONString(b, s.cfg.BrokerName)
	b = append(b, `,"readQueueNums":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"writeQueueNums":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"perm":6,"topicSysFlag":0}],"brokerDatas":[`...)
	b = s.appendBrokerData(b)
	b = append(b, `],"filterServerTable":{}}`...)
	return b
}

func (s *Server) appendBrokerData(b []byte) []byte {
	b = append(b, `{"cluster":`...)
	b = appendJSONString(b, s.cfg.ClusterName)
	b = append(b, `,"brokerName":`...)
	b = appendJSONString(b, s.cfg.BrokerName)
	b = append(b, `,"brokerAddrs":{"0":`...)
	b = appendJSONString(b, s.BrokerAddr())
	b = append(b, `}}`...)
	return b
}

func (s *Server) clusterInfo() []byte {
	b := []byte(`{"brokerAddrTable":{`)
	b = appendJSONString(b, s.cfg.BrokerName)
	b = append(b, ':')
	b = s.appendBrokerData(b)
	b = append(b, `},"clusterAddrTable":{`...)
	b = appendJSONString(b, s.cfg.ClusterName)
	b = append(b, ":["...)
	b = appendJSONString(b, s.cfg.BrokerName)
	b = append(b, "]}}"...)
	return b
}

// createTopic serves UPDATE_AND_CREATE_TOPIC (17) from admin tools.
func (s *Server) createTopic(cmd *Command) *Out {
	name := cmd.Str("topic")
	n := int(cmd.Int("writeQueueNums"))
	if r := int(cmd.Int("readQueueNums")); r > n {
		n = r
	}
	if _, err := s.topic(name, true, n); err != nil {
		return respond(cmd, respSystemError, err.Error())
	}
	return respond(cmd, respSuccess, "")
}

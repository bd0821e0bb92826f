package security

import (
	"encoding/json"
	"errors"
	"time"
)

// Topic is the replica bus's topic of security events.
const Topic = "security"

// Publisher sends a message to the other replicas of the deployment on a topic: the replica bus
// (*bus.Bus), which queues it (bounded: a full queue drops it) and never blocks.
type Publisher interface {
	Publish(topic string, payload []byte)
}

// maxPayload bounds a message Receive will decode: an event is at most a few KiB.
const maxPayload = 16 << 10

// errMalformed is a message on the topic that is not a valid event.
var errMalformed = errors.New("security: not a valid event")

// Share joins this log to the other replicas' over p: from now on every event logged here is
// also published on Topic, and the events the other replicas publish there are to be handed to
// Receive (the bus's handler of Topic), which adds them to this log and fans them out to its
// subscribers. Publishing never waits: while the other replicas cannot be reached, logging goes
// on here. Pub/sub does not replay: events published while a replica was cut off do not reach it.
func (l *Log) Share(p Publisher) {
	forward := func(e Event) {
		if payload, err := json.Marshal(toWire(e)); err == nil {
			p.Publish(Topic, payload)
		}
	}
	l.forward.Store(&forward)
}

// Receive adds an event another replica published on Topic to this log. Errors: a payload that
// is not a valid event (too long, not JSON, an unknown type), which is dropped.
func (l *Log) Receive(payload []byte) error {
	if len(payload) > maxPayload {
		return errMalformed
	}
	var w wireEvent
	if err := json.Unmarshal(payload, &w); err != nil || !w.Type.Valid() {
		return errMalformed
	}
	l.receive(w.event())
	return nil
}

// wireEvent is an event on the topic.
type wireEvent struct {
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	Severity  Severity  `json:"severity"`
	At        time.Time `json:"at"`
	IP        string    `json:"ip,omitempty"`
	UserID    string    `json:"userId,omitempty"`
	Email     string    `json:"email,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Message   string    `json:"message,omitempty"`
	Count     int       `json:"count,omitempty"`
}

func toWire(e Event) wireEvent {
	return wireEvent{ID: e.ID, Type: e.Type, Severity: e.Severity, At: e.At,
		IP: e.IP, UserID: e.UserID, Email: e.Email, UserAgent: e.UserAgent,
		Operation: e.Operation, Message: e.Message, Count: e.Count}
}

func (w wireEvent) event() Event {
	return Event{ID: w.ID, Type: w.Type, Severity: w.Severity, At: w.At,
		IP: w.IP, UserID: w.UserID, Email: w.Email, UserAgent: w.UserAgent,
		Operation: w.Operation, Message: w.Message, Count: w.Count}
}

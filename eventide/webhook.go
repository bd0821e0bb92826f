package eventide

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// The webhook message types (API.md, "Webhooks").
const (
	WebhookRegistrationConfirmed  = "registration.confirmed"
	WebhookRegistrationWaitlisted = "registration.waitlisted"
	WebhookRegistrationPromoted   = "registration.promoted"
	WebhookRegistrationCancelled  = "registration.cancelled"
	WebhookEventPublished         = "event.published"
	WebhookEventUpdated           = "event.updated"
	WebhookEventCancelled         = "event.cancelled"
)

// DeliveryStatus is where one webhook delivery (one message to one receiver) is.
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "PENDING"
	DeliveryDelivered DeliveryStatus = "DELIVERED"
	DeliveryFailed    DeliveryStatus = "FAILED"
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliveryDelivered || s == DeliveryFailed
}

// WebhookMessage is one thing that happened, as the stores write it to the outbox in the same
// write as the change it reports. Body is the exact JSON POSTed (and signed): {id, type,
// occurredAt, data}; ID is stable across retries (the Eventide-Delivery header).
type WebhookMessage struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Body       []byte
}

type webhookBody struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurredAt"`
	Data       any       `json:"data"`
}

// WebhookRegistration is a registration in a webhook body's data.
type WebhookRegistration struct {
	ID        string    `json:"id"`
	EventID   string    `json:"eventId"`
	UserID    string    `json:"userId"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// CancelReason is the organizer's reason (removeRegistration) or the cancelled event's;
	// absent when there is none.
	CancelReason string `json:"cancelReason,omitempty"`
}

// WebhookEvent is an event in a webhook body's data.
type WebhookEvent struct {
	ID            string    `json:"id"`
	Title         string    `json:"title"`
	Status        string    `json:"status"`
	StartsAt      time.Time `json:"startsAt"`
	EndsAt        time.Time `json:"endsAt"`
	Capacity      int       `json:"capacity"`
	Tags          []string  `json:"tags"`
	VenueID       *string   `json:"venueId"`
	OrganizerID   string    `json:"organizerId"`
	AttendeeCount int       `json:"attendeeCount"`
	WaitlistCount int       `json:"waitlistCount"`
	CancelReason  *string   `json:"cancelReason"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

func newMessage(id, typ string, at time.Time, data any) WebhookMessage {
	at = at.UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(webhookBody{ID: id, Type: typ, OccurredAt: at, Data: data})
	if err != nil { // plain structs of strings, ints and times: cannot fail
		panic(err)
	}
	return WebhookMessage{ID: id, Type: typ, OccurredAt: at, Body: b}
}

// RegistrationMessage is a registration.* message about r (as it is after the change), with id.
func RegistrationMessage(id, typ string, at time.Time, r *Registration) WebhookMessage {
	return newMessage(id, typ, at, map[string]any{"registration": WebhookRegistration{
		ID: r.ID, EventID: r.EventID, UserID: r.UserID, Status: string(r.Status),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), CancelReason: r.CancelReason,
	}})
}

// EventMessage is an event.* message about e (as it is after the change), with id.
func EventMessage(id, typ string, at time.Time, e *Event) WebhookMessage {
	w := WebhookEvent{
		ID: e.ID, Title: e.Title, Status: string(e.Status), StartsAt: e.StartsAt.UTC(), EndsAt: e.EndsAt.UTC(),
		Capacity: e.Capacity, Tags: e.Tags, OrganizerID: e.OrganizerID,
		AttendeeCount: e.ConfirmedCount, WaitlistCount: e.WaitlistCount, UpdatedAt: e.UpdatedAt.UTC(),
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	if e.VenueID != "" {
		v := e.VenueID
		w.VenueID = &v
	}
	if e.CancelReason != "" {
		c := e.CancelReason
		w.CancelReason = &c
	}
	return newMessage(id, typ, at, map[string]any{"event": w})
}

// EventChangeType is the event.* message an edit from before to after reports: published,
// cancelled, or updated; "" for a draft's edit (nobody outside sees drafts).
func EventChangeType(before, after EventStatus) string {
	switch {
	case after == EventPublished && before != EventPublished:
		return WebhookEventPublished
	case after == EventCancelled && before != EventCancelled:
		return WebhookEventCancelled
	case after == EventDraft:
		return ""
	}
	return WebhookEventUpdated
}

// DeliveryKey is the outbox row of message id for receiver: one row per message and receiver.
func DeliveryKey(messageID, receiver string) string {
	h := sha256.Sum256([]byte(receiver))
	return messageID + "-" + hex.EncodeToString(h[:4])
}

// WebhookDelivery is one message to one receiver, with its delivery state.
type WebhookDelivery struct {
	Key           string // DeliveryKey(ID, Receiver)
	ID            string // the message id: Eventide-Delivery and the body's id
	Receiver      string
	Type          string
	Body          []byte
	OccurredAt    time.Time
	Status        DeliveryStatus
	Attempts      int
	LastError     string
	NextAttemptAt time.Time // when PENDING: not before this
	UpdatedAt     time.Time
}

// WebhookOutcome is what an attempt to deliver came to.
type WebhookOutcome struct {
	Status        DeliveryStatus // DELIVERED, PENDING (retry at NextAttemptAt) or FAILED
	NextAttemptAt time.Time
	Error         string
	At            time.Time
}

// WebhookOutbox is the store side of webhooks: the outbox rows the writes left, claimed by the
// delivery worker under a lease so that, across replicas, one delivers each at a time.
type WebhookOutbox interface {
	// ClaimWebhook claims the oldest PENDING delivery to receiver when it is due at now and not
	// leased by anyone else, counts the attempt and leases it to owner until now+lease. It
	// returns nil when the oldest one is not due (or leased); next is then when to look again
	// (zero: nothing pending).
	ClaimWebhook(ctx context.Context, receiver, owner string, now time.Time, lease time.Duration) (d *WebhookDelivery, next time.Time, err error)
	// FinishWebhook records the outcome of owner's attempt on the delivery key and ends the
	// lease; it reports false when owner no longer held it (the lease ran out).
	FinishWebhook(ctx context.Context, key, owner string, o WebhookOutcome) (bool, error)
	// ReleaseWebhook gives back owner's lease on key without counting the attempt (a shutdown
	// cut it short).
	ReleaseWebhook(ctx context.Context, key, owner string) error
	// WebhookDeliveries lists the last deliveries (newest first), of one status when set.
	WebhookDeliveries(ctx context.Context, status DeliveryStatus, last int) ([]*WebhookDelivery, error)
	// PurgeWebhooks deletes DELIVERED and FAILED deliveries last changed before cutoff.
	PurgeWebhooks(ctx context.Context, cutoff time.Time) (int, error)
	// WebhookBacklog counts PENDING deliveries and returns the oldest one's occurredAt (zero
	// when none).
	WebhookBacklog(ctx context.Context) (pending int, oldest time.Time, err error)
}

// OutboxOptions tells a store whether and for whom to write webhook messages.
type OutboxOptions struct {
	// Receivers are the WEBHOOK_URLS; none: the stores write nothing.
	Receivers []string
	// Notify, when set, is called after a write that added to the outbox committed.
	Notify func()
}

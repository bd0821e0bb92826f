package eventide

import (
	"context"
	"time"
)

// MaxPageSize caps the first argument of every connection.
const MaxPageSize = 100

// DefaultPageSize is the page size when a client does not say.
const DefaultPageSize = 20

// Page asks for one page of a connection: at most First items after the opaque cursor After.
type Page struct {
	First int
	After string
}

// Conn is one page of items with a cursor for each, in the connection's order.
type Conn[T any] struct {
	Items       []T
	Cursors     []string
	HasNextPage bool
}

// EndCursor is the cursor of the last item, or "" for an empty page.
func (c *Conn[T]) EndCursor() string {
	if len(c.Cursors) == 0 {
		return ""
	}
	return c.Cursors[len(c.Cursors)-1]
}

// EventQuery selects events; zero fields do not constrain. Results are ordered by StartsAt, then ID.
type EventQuery struct {
	Statuses    []EventStatus
	StartsFrom  *time.Time // startsAt >= StartsFrom
	StartsTo    *time.Time // startsAt < StartsTo
	EndsAfter   *time.Time // endsAt > EndsAfter
	City        string     // case-insensitive
	Tag         string
	OrganizerID string
	VenueID     string
	Search      string // case-insensitive substring of title or description
	// DraftsOf, when set, limits DRAFT events to those organized by this user id; other statuses are
	// unaffected. Empty with DRAFT in Statuses means every draft (an admin's view).
	DraftsOf string
	// NoDrafts excludes every draft whatever Statuses says (an anonymous viewer).
	NoDrafts bool
}

// UserQuery selects users; zero fields do not constrain.
type UserQuery struct {
	Search string // a case-insensitive substring of the name or the email, matched literally
	Role   Role
}

// UserStore keeps user accounts.
type UserStore interface {
	// CreateUser stores u, setting its ID; a taken email is BAD_USER_INPUT on field "email".
	CreateUser(ctx context.Context, u *User) error
	// UserByID returns the user or NOT_FOUND.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByEmail looks the email up case-insensitively; NOT_FOUND when absent.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UsersByIDs returns the users that exist among ids, in no particular order.
	UsersByIDs(ctx context.Context, ids []string) ([]*User, error)
	// SetUserRole changes a user's role and returns the user; NOT_FOUND when absent.
	SetUserRole(ctx context.Context, id string, role Role) (*User, error)
	// SetUserCredentials replaces a user's password hash and role.
	SetUserCredentials(ctx context.Context, id string, hash []byte, role Role) error
	// CountUsers counts every user.
	CountUsers(ctx context.Context) (int, error)
	// Users lists the users q selects, oldest account first (by creation, then id), without
	// their password hashes. A bad cursor or a negative page size is BAD_USER_INPUT.
	Users(ctx context.Context, q UserQuery, page Page) (*Conn[*User], error)
	// CountUsersMatching counts the users q selects.
	CountUsersMatching(ctx context.Context, q UserQuery) (int, error)
}

// VenueStore keeps venues.
type VenueStore interface {
	CreateVenue(ctx context.Context, v *Venue) error
	VenueByID(ctx context.Context, id string) (*Venue, error)
	VenuesByIDs(ctx context.Context, ids []string) ([]*Venue, error)
	// Venues lists venues (in one city when city is set, case-insensitively) by name, then ID.
	Venues(ctx context.Context, city string, page Page) (*Conn[*Venue], error)
	CountVenues(ctx context.Context, city string) (int, error)
	// UpdateVenue applies change to the current venue and stores the result; the events at the
	// venue take its new city and time zone in the same write. NOT_FOUND when absent.
	UpdateVenue(ctx context.Context, id string, change func(*Venue) error) (*Venue, error)
}

// EventStore keeps events.
type EventStore interface {
	CreateEvent(ctx context.Context, e *Event) error
	EventByID(ctx context.Context, id string) (*Event, error)
	EventsByIDs(ctx context.Context, ids []string) ([]*Event, error)
	// UpdateEvent applies change to the current event and stores the result, serialised with
	// registrations for the same event. Raising the capacity promotes waitlisted registrations;
	// lowering it below the confirmed count is BAD_USER_INPUT on "capacity".
	UpdateEvent(ctx context.Context, id string, change func(*Event) error) (*Event, error)
	Events(ctx context.Context, q EventQuery, page Page) (*Conn[*Event], error)
	CountEvents(ctx context.Context, q EventQuery) (int, error)
	// NextEventEnd returns the earliest endsAt among the events q selects, the zero time when it
	// selects none. With q.EndsAfter set, CountEvents(q) stays the same until that instant: it
	// is when the first counted event ends (the cache keeps counts until then).
	NextEventEnd(ctx context.Context, q EventQuery) (time.Time, error)
}

// RegistrationStore keeps registrations and the event counters exact under concurrency.
type RegistrationStore interface {
	// Register places userID at eventID: CONFIRMED while seats remain, else WAITLISTED. Registering
	// again returns the active registration unchanged. The event must be PUBLISHED and not ended
	// at now (BAD_USER_INPUT otherwise). It returns the registration and the event after the change.
	Register(ctx context.Context, eventID, userID string, now time.Time) (*Registration, *Event, error)
	// CancelRegistration cancels the user's active registration (NOT_FOUND when there is none;
	// BAD_USER_INPUT once its event has ended at now) and, when it held a seat, promotes the
	// oldest waitlisted registration.
	CancelRegistration(ctx context.Context, eventID, userID string, now time.Time) (*Registration, *Event, error)
	// RegistrationFor returns the user's registration at the event, or NOT_FOUND.
	RegistrationFor(ctx context.Context, eventID, userID string) (*Registration, error)
	// Attendees lists the CONFIRMED registrations of an event in arrival order.
	Attendees(ctx context.Context, eventID string, page Page) (*Conn[*Registration], error)
	// CalendarRegistrations returns the user's registrations in every status, newest first, at
	// most limit of them: a calendar feed shows the active ones and those whose event was
	// cancelled.
	CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*Registration, error)
	RegistrationJourneys
}

// CalendarStore keeps the secret of each user's calendar feed URL (the URL is derived from it
// with a server key, so the store alone does not give it away).
type CalendarStore interface {
	// CalendarSecret returns the user's current secret, "" when none was ever set.
	CalendarSecret(ctx context.Context, userID string) (string, error)
	// SetCalendarSecret replaces the user's secret; the URLs derived from the old one stop working.
	SetCalendarSecret(ctx context.Context, userID, secret string) error
}

// RegistrationFilter narrows a user's registrations; zero fields do not constrain.
type RegistrationFilter struct {
	Status RegistrationStatus
	// Upcoming, when set, keeps the registrations whose event has not ended at Now (true) or
	// has (false).
	Upcoming *bool
	// Now splits upcoming from past; the list is ordered by it in every case.
	Now time.Time
}

// RegistrationJourneys are the attendee's and the organizer's views of registrations.
//
// UpdateEvent also keeps registrations in step: a change to CANCELLED cancels every active
// registration of the event (CancelReason from the event) with the status, the counters going to
// zero in the same write (or, on MongoDB, repaired to it); raising the capacity promotes.
// Every registration a write changes is reported to NoteRegistrations once the write is durable.
type RegistrationJourneys interface {
	// UserRegistrations lists a user's registrations: those whose event has not ended at f.Now
	// first, by the event's start, then the past ones, latest start first. A bad cursor or a
	// negative page size is BAD_USER_INPUT.
	UserRegistrations(ctx context.Context, userID string, f RegistrationFilter, page Page) (*Conn[*Registration], error)
	// CountUserRegistrations counts what UserRegistrations lists.
	CountUserRegistrations(ctx context.Context, userID string, f RegistrationFilter) (int, error)
	// EventRegistrations lists an event's registrations of status (every status when empty) in
	// arrival order.
	EventRegistrations(ctx context.Context, eventID string, status RegistrationStatus, page Page) (*Conn[*Registration], error)
	// CountEventRegistrations counts what EventRegistrations lists.
	CountEventRegistrations(ctx context.Context, eventID string, status RegistrationStatus) (int, error)
	// RegistrationByID returns a registration or NOT_FOUND.
	RegistrationByID(ctx context.Context, id string) (*Registration, error)
	// RemoveRegistration cancels the registration id with reason, promoting the oldest waitlisted
	// registration into a freed seat, as CancelRegistration does. An already cancelled one is
	// NOT_FOUND; one whose event has ended at now is BAD_USER_INPUT.
	RemoveRegistration(ctx context.Context, id, reason string, now time.Time) (*Registration, *Event, error)
	// WaitlistPositions returns the 1-based place in its event's waitlist of each registration
	// among ids that is WAITLISTED now, by id (others are absent): one count of those ahead
	// of it on the (event, status, arrival) index.
	WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error)
}

// StoreStats describes a store's connections for databaseStats: for MongoDB the driver's pool,
// for the embedded store its SQLite connections.
type StoreStats struct {
	Connected       bool
	MaxPoolSize     int
	ConnectionsOpen int
	ConnectionsUsed int
	LastEvent       string
	LastEventAt     time.Time
}

// Store is everything the resolvers need from persistence.
type Store interface {
	UserStore
	VenueStore
	EventStore
	RegistrationStore
	CalendarStore
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

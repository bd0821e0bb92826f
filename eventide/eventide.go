// Package eventide holds Eventide's domain: users, venues, events and registrations, the error
// type with its codes, and the small service interfaces the adapters implement. It imports
// nothing of ours.
package eventide

import "time"

// Role is what a user may do. Roles are ordered: an ADMIN can do what an ORGANIZER can, and an
// ORGANIZER what a USER can.
type Role string

// The roles, from least to most privileged.
const (
	RoleUser      Role = "USER"
	RoleOrganizer Role = "ORGANIZER"
	RoleAdmin     Role = "ADMIN"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r grants everything min grants.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() && r.rank() > 0 }

func (r Role) rank() int {
	switch r {
	case RoleUser:
		return 1
	case RoleOrganizer:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// EventStatus is where an event is in its life.
type EventStatus string

// The event statuses.
const (
	EventDraft     EventStatus = "DRAFT"
	EventPublished EventStatus = "PUBLISHED"
	EventCancelled EventStatus = "CANCELLED"
)

// Valid reports whether s is a known status.
func (s EventStatus) Valid() bool {
	return s == EventDraft || s == EventPublished || s == EventCancelled
}

// RegistrationStatus is the state of one user's registration for one event.
type RegistrationStatus string

// The registration statuses.
const (
	RegistrationConfirmed  RegistrationStatus = "CONFIRMED"
	RegistrationWaitlisted RegistrationStatus = "WAITLISTED"
	RegistrationCancelled  RegistrationStatus = "CANCELLED"
)

// Valid reports whether s is a known status.
func (s RegistrationStatus) Valid() bool {
	return s == RegistrationConfirmed || s == RegistrationWaitlisted || s == RegistrationCancelled
}

// User is a person with an account.
type User struct {
	ID           string
	Name         string
	Email        string // stored lower-cased; unique
	Role         Role
	PasswordHash []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Venue is a place events happen at.
type Venue struct {
	ID          string
	Name        string
	Address     string
	City        string
	Capacity    *int // nil when unknown
	CreatedByID string
	CreatedAt   time.Time
	TimeZone    string // IANA name (ValidTimeZone); "" reads as UTC
}

// Event is something people register for. ConfirmedCount and WaitlistCount are kept exact by the
// registration service, so reading them costs nothing extra.
type Event struct {
	ID             string
	Title          string
	Description    string
	StartsAt       time.Time
	EndsAt         time.Time
	Status         EventStatus
	Capacity       int
	Tags           []string
	VenueID        string // empty when the event has no venue
	City           string // the venue's city, copied so that a city filter is one query
	OrganizerID    string
	ConfirmedCount int
	WaitlistCount  int
	CancelReason   string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// TimeZone is the IANA zone the event's local times are given in: its venue's (a copy, kept
	// in step by UpdateVenue) or, without a venue, its own. "" reads as UTC.
	TimeZone string
	// Online events have a link, OnlineURL, shown only to confirmed attendees, the organizer and
	// admins (CanSeeOnlineURL).
	Online    bool
	OnlineURL string
	// Revision counts the edits of the event (UpdateEvent), not its registrations: the
	// iCalendar SEQUENCE.
	Revision int
}

// VisibleTo reports whether viewer (nil for anonymous) may see e: drafts are seen by their
// organizer and admins only.
func (e *Event) VisibleTo(viewer *User) bool {
	return e.Status != EventDraft || viewer.CanManage(e)
}

// CanManage reports whether u (nil for anonymous) may change e and see what only its organizer
// sees (its drafts, its registrations, its link): e's organizer or an admin.
func (u *User) CanManage(e *Event) bool {
	return u != nil && (u.ID == e.OrganizerID || u.Role == RoleAdmin)
}

// CanManageVenue reports whether u (nil for anonymous) may change v: its creator or an admin.
func (u *User) CanManageVenue(v *Venue) bool {
	return u != nil && (u.ID == v.CreatedByID || u.Role == RoleAdmin)
}

// CanSeeAccount reports whether u (nil for anonymous) may see what is private to the account of
// other (its email, calendar URL, registrations and drafts): other themself or an admin.
func (u *User) CanSeeAccount(other *User) bool {
	return u != nil && (u.ID == other.ID || u.Role == RoleAdmin)
}

// ActsForOther reports whether u changed e only by being an admin: an admin who is not e's
// organizer (the writes the security log records as ADMIN_ACTION).
func (u *User) ActsForOther(e *Event) bool {
	return u != nil && u.Role == RoleAdmin && u.ID != e.OrganizerID
}

// Registration is one user's place (confirmed or waitlisted) at one event.
type Registration struct {
	ID        string
	EventID   string
	UserID    string
	Status    RegistrationStatus
	CreatedAt time.Time // arrival time; the waitlist is ordered by it
	UpdatedAt time.Time
	// CancelReason says why the organizer removed it, or the event's reason when the event was
	// cancelled; empty otherwise.
	CancelReason string
}

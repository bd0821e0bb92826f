package eventide

import (
	"strings"
	"time"
	// The zone database inside the binary: a minimal container has no /usr/share/zoneinfo, and
	// a zone must mean the same on every replica.
	_ "time/tzdata"
)

// DefaultTimeZone is the zone of a venue or event that names none.
const DefaultTimeZone = "UTC"

// maxTimeZone bounds a zone name (the longest IANA name is 32 bytes).
const maxTimeZone = 64

// ValidTimeZone returns the location of an IANA zone name such as "Europe/Lisbon", or a
// BAD_USER_INPUT error on field. "Local" and names Go accepts only as file paths are refused: a
// zone must mean the same on every machine.
func ValidTimeZone(field, name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxTimeZone || name == "Local" || strings.HasPrefix(name, "/") ||
		strings.Contains(name, "..") || strings.ContainsAny(name, "\\ \x00") {
		return nil, InvalidField(field, "must be an IANA time zone such as \"Europe/Lisbon\"")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, InvalidField(field, "unknown time zone %q (an IANA name such as \"Europe/Lisbon\")", name)
	}
	return loc, nil
}

// Location returns the location of a stored zone name, UTC when it is empty or unknown (a
// stored name was validated when written; a tz database that dropped it later must not break
// reads).
func Location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// LocalTime formats t as an ISO 8601 local date-time in loc, without an offset
// ("2026-05-01T19:30:00").
func LocalTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02T15:04:05")
}

// CanSeeOnlineURL reports whether viewer (nil: anonymous) may see e's link, given the viewer's
// registration at e (nil: none): the organizer, admins and confirmed attendees.
func (e *Event) CanSeeOnlineURL(viewer *User, reg *Registration) bool {
	switch {
	case viewer == nil:
		return false
	case viewer.CanManage(e):
		return true
	}
	return reg != nil && reg.UserID == viewer.ID && reg.Status == RegistrationConfirmed
}

// cityZones are the zones of the cities the demo data and the synthetic seed use: what a venue
// stored before venues had zones takes (store/sqlite's migration 4 holds the same list in SQL).
var cityZones = map[string]string{
	"lisbon": "Europe/Lisbon", "porto": "Europe/Lisbon", "faro": "Europe/Lisbon", "braga": "Europe/Lisbon",
	"coimbra": "Europe/Lisbon", "madrid": "Europe/Madrid", "barcelona": "Europe/Madrid", "seville": "Europe/Madrid",
	"valencia": "Europe/Madrid", "bilbao": "Europe/Madrid", "granada": "Europe/Madrid", "berlin": "Europe/Berlin",
	"amsterdam": "Europe/Amsterdam", "copenhagen": "Europe/Copenhagen", "vienna": "Europe/Vienna",
}

// CityTimeZone is the zone of a known city, DefaultTimeZone for any other: the default of a venue
// stored before venues had zones.
func CityTimeZone(city string) string {
	if z, ok := cityZones[FoldCity(city)]; ok {
		return z
	}
	return DefaultTimeZone
}

// ZoneOr returns name, or DefaultTimeZone when it is empty.
func ZoneOr(name string) string {
	if name == "" {
		return DefaultTimeZone
	}
	return name
}

// EventZone is the zone e's local times are in: its venue's (v, nil when it has none or it was
// not found), else its own. The venue's is read from the venue, not e's copy, so a cached event
// shows a venue's new zone as soon as the venue changed.
func EventZone(e *Event, v *Venue) string {
	if v != nil && e.VenueID != "" && v.ID == e.VenueID {
		return ZoneOr(v.TimeZone)
	}
	return ZoneOr(e.TimeZone)
}

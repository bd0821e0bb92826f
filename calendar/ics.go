package calendar

import (
	"io"
	"slices"
	"strings"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/eventide/server/eventide"
)

// Entry is one event of a calendar file, with what the file shows of it.
type Entry struct {
	Event *eventide.Event
	// Venue is the event's venue, nil when it has none.
	Venue *eventide.Venue
	// Zone is the IANA zone the event's times are written in (its venue's, or its own).
	Zone string
	// Waitlisted marks an entry of a personal feed whose owner waits for a seat: TENTATIVE.
	Waitlisted bool
	// OnlineURL, when set, is the link the reader may see (a confirmed attendee's own feed);
	// public files never carry it.
	OnlineURL string
}

// ContentType is the media type of the files Write produces.
const ContentType = "text/calendar; charset=utf-8"

// uidDomain makes an event's UID globally unique and stable: "<event id>@eventide".
const uidDomain = "@eventide"

// UID is the iCalendar UID of an event: the same in every file and every revision, so a calendar
// app updates its copy instead of adding another.
func UID(eventID string) string { return eventID + uidDomain }

// maxZoneYears bounds the span a VTIMEZONE is written for.
const maxZoneYears = 30

const localFormat = "20060102T150405"

// Write writes entries as one VCALENDAR named name: a VEVENT per entry (UID stable per event,
// SEQUENCE its revision, STATUS:CANCELLED once cancelled, DTSTART/DTEND in the event's zone with
// TZID) and a VTIMEZONE per zone used, built from Go's zone database for the years the events
// span. Lines are folded at 75 octets and end in CRLF; text is escaped (RFC 5545, 3.1 and
// 3.3.11).
func Write(w io.Writer, name string, entries []Entry) error {
	cal := ics.NewCalendarFor("Eventide")
	cal.SetProductId("-//Eventide//Eventide Calendar//EN")
	cal.SetCalscale("GREGORIAN")
	cal.SetXWRCalName(name)
	// Subscribed feeds: calendar apps that honour these re-read every few hours.
	cal.SetRefreshInterval("PT4H", ics.WithValue("DURATION"))
	cal.SetXPublishedTTL("PT4H")

	spans := map[string][2]time.Time{}
	var zones []string
	for _, en := range entries {
		z := eventide.ZoneOr(en.Zone)
		sp, ok := spans[z]
		if !ok {
			zones = append(zones, z)
			sp = [2]time.Time{en.Event.StartsAt, en.Event.EndsAt}
		}
		if en.Event.StartsAt.Before(sp[0]) {
			sp[0] = en.Event.StartsAt
		}
		if en.Event.EndsAt.After(sp[1]) {
			sp[1] = en.Event.EndsAt
		}
		spans[z] = sp
	}
	slices.Sort(zones)
	for _, z := range zones {
		cal.AddVTimezone(vtimezone(z, spans[z][0], spans[z][1]))
	}
	for _, en := range entries {
		cal.AddVEvent(vevent(en))
	}
	return cal.SerializeTo(w, ics.WithNewLineWindows)
}

func vevent(en Entry) *ics.VEvent {
	e := en.Event
	z := eventide.ZoneOr(en.Zone)
	loc := eventide.Location(z)
	v := ics.NewEvent(UID(e.ID))
	// DTSTAMP: when this information last changed in the store (RFC 5545 3.8.7.2, for an object
	// without METHOD), so an unchanged event reads the same in every download.
	v.SetDtStampTime(e.UpdatedAt)
	v.SetCreatedTime(e.CreatedAt)
	v.SetModifiedAt(e.UpdatedAt)
	v.SetSequence(e.Revision)
	v.SetProperty(ics.ComponentPropertyDtStart, e.StartsAt.In(loc).Format(localFormat), ics.WithTZID(z))
	v.SetProperty(ics.ComponentPropertyDtEnd, e.EndsAt.In(loc).Format(localFormat), ics.WithTZID(z))
	summary := e.Title
	desc := clean(e.Description)
	switch {
	case e.Status == eventide.EventCancelled:
		v.SetStatus(ics.ObjectStatusCancelled)
		summary = "Cancelled: " + summary
		if e.CancelReason != "" {
			desc = strings.TrimSpace("Cancelled: " + clean(e.CancelReason) + "\n\n" + desc)
		}
	case en.Waitlisted:
		v.SetStatus(ics.ObjectStatusTentative)
		desc = strings.TrimSpace("You are on the waitlist.\n\n" + desc)
	case e.Status == eventide.EventDraft:
		v.SetStatus(ics.ObjectStatusTentative)
	default:
		v.SetStatus(ics.ObjectStatusConfirmed)
	}
	v.SetSummary(clean(summary))
	if en.OnlineURL != "" {
		v.SetURL(en.OnlineURL)
		desc = strings.TrimSpace(desc + "\n\nJoin online: " + en.OnlineURL)
	}
	if desc != "" {
		v.SetDescription(desc)
	}
	switch {
	case en.Venue != nil:
		v.SetLocation(clean(strings.Join(nonEmpty(en.Venue.Name, en.Venue.Address, en.Venue.City), ", ")))
	case e.Online:
		v.SetLocation("Online")
	}
	return v
}

// clean makes text fit a TEXT value: CR LF and CR become LF (escaped as \n), other C0 controls
// are dropped.
func clean(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
}

func nonEmpty(ss ...string) []string {
	return slices.DeleteFunc(ss, func(s string) bool { return strings.TrimSpace(s) == "" })
}

// vtimezone describes zone from the start of from's year to the end of to's (at most
// maxZoneYears), from Go's zone database: a first observance at the start of the span, then one
// per offset change in it (each a one-off onset, no RRULE, so it is exact for the years written
// whatever the zone's rules were).
func vtimezone(zone string, from, to time.Time) *ics.VTimezone {
	loc := eventide.Location(zone)
	start := time.Date(from.In(loc).Year(), 1, 1, 0, 0, 0, 0, loc)
	endYear := min(to.In(loc).Year(), start.Year()+maxZoneYears-1)
	end := time.Date(endYear+1, 1, 1, 0, 0, 0, 0, loc)
	tz := ics.NewTimezone(zone)
	name, off := start.Zone()
	tz.Components = append(tz.Components, observance(start.IsDST(), start, off, off, name))
	const step = 24 * time.Hour
	for t := start; t.Before(end); t = t.Add(step) {
		next := t.Add(step)
		if !changed(t, next) {
			continue
		}
		// The first second of the new offset, between t and next.
		lo, hi := t, next
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
			if mid.Equal(lo) {
				mid = lo.Add(time.Second)
			}
			if changed(lo, mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		_, from := lo.Zone()
		name, to := hi.Zone()
		tz.Components = append(tz.Components, observance(hi.IsDST(), hi, from, to, name))
	}
	return tz
}

func changed(a, b time.Time) bool {
	an, ao := a.Zone()
	bn, bo := b.Zone()
	return ao != bo || an != bn || a.IsDST() != b.IsDST()
}

// observance is a STANDARD or DAYLIGHT sub-component beginning at the instant at, written as the
// wall-clock time of the offset in force before it (RFC 5545 3.6.5).
func observance(dst bool, at time.Time, from, to int, name string) ics.Component {
	cb := ics.ComponentBase{}
	cb.AddProperty(ics.ComponentPropertyDtStart, at.UTC().Add(time.Duration(from)*time.Second).Format(localFormat))
	cb.AddProperty(ics.ComponentProperty(ics.PropertyTzoffsetfrom), utcOffset(from))
	cb.AddProperty(ics.ComponentProperty(ics.PropertyTzoffsetto), utcOffset(to))
	if name != "" {
		cb.AddProperty(ics.ComponentProperty(ics.PropertyTzname), name)
	}
	if dst {
		return &ics.Daylight{ComponentBase: cb}
	}
	return &ics.Standard{ComponentBase: cb}
}

// utcOffset formats seconds east of UTC as RFC 5545's UTC-OFFSET: +HHMM, or +HHMMSS.
func utcOffset(sec int) string {
	sign := byte('+')
	if sec < 0 {
		sign, sec = '-', -sec
	}
	b := []byte{sign}
	b = appendTwo(b, sec/3600)
	b = appendTwo(b, sec/60%60)
	if sec%60 != 0 {
		b = appendTwo(b, sec%60)
	}
	return string(b)
}

func appendTwo(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

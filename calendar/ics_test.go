package calendar_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	goical "github.com/emersion/go-ical"

	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
)

// parse decodes an iCalendar file with emersion/go-ical (the parser go-webdav's CalDAV uses; a
// different library from the one that writes it) after checking the framing the parser forgives:
// CRLF line ends and lines of at most 75 octets.
func parse(t *testing.T, b []byte) *goical.Calendar {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatal("the file does not end in CRLF")
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\r\n")), []byte("\r\n")) {
		if len(line) > 75 {
			t.Fatalf("line %d is %d octets (at most 75): %q", i+1, len(line), line)
		}
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d holds a bare CR or LF: %q", i+1, line)
		}
	}
	cal, err := goical.NewDecoder(bytes.NewReader(b)).Decode()
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return cal
}

// zoneOffset resolves a local date-time in the file's own VTIMEZONE (not Go's database): the
// TZOFFSETTO of the latest observance whose onset is not after it.
func zoneOffset(t *testing.T, cal *goical.Calendar, tzid string, local string) time.Duration {
	t.Helper()
	lt, err := time.Parse("20060102T150405", local)
	if err != nil {
		t.Fatal(err)
	}
	var best time.Time
	var off time.Duration
	found := false
	for _, c := range cal.Children {
		if c.Name != goical.CompTimezone || c.Props.Get(goical.PropTimezoneID).Value != tzid {
			continue
		}
		for _, o := range c.Children {
			on, err := time.Parse("20060102T150405", o.Props.Get(goical.PropDateTimeStart).Value)
			if err != nil {
				t.Fatal(err)
			}
			if !on.After(lt) && (!found || on.After(best)) {
				best, found = on, true
				off = parseOffset(t, o.Props.Get(goical.PropTimezoneOffsetTo).Value)
			}
		}
	}
	if !found {
		t.Fatalf("no VTIMEZONE %q observance covers %s", tzid, local)
	}
	return off
}

func parseOffset(t *testing.T, s string) time.Duration {
	t.Helper()
	if len(s) != 5 && len(s) != 7 {
		t.Fatalf("bad UTC offset %q", s)
	}
	d, err := time.ParseDuration(s[1:3] + "h" + s[3:5] + "m")
	if err != nil {
		t.Fatal(err)
	}
	if s[0] == '-' {
		d = -d
	}
	return d
}

// instant is what DTSTART or DTEND names, read through the file's VTIMEZONE.
func instant(t *testing.T, cal *goical.Calendar, p *goical.Prop) time.Time {
	t.Helper()
	tzid := p.Params.Get(goical.PropTimezoneID)
	if tzid == "" {
		t.Fatalf("%s has no TZID: %q", p.Name, p.Value)
	}
	lt, err := time.Parse("20060102T150405", p.Value)
	if err != nil {
		t.Fatal(err)
	}
	return lt.Add(-zoneOffset(t, cal, tzid, p.Value))
}

func TestWrite(t *testing.T) {
	created := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	// Lisbon: one event in winter (UTC+0), one in summer (UTC+1), one in New York.
	winter := &eventide.Event{ID: "e1", Title: "Fado, night; \"live\"", Description: "Line one,\r\nline two; with a backslash \\ and ünïcödé " + strings.Repeat("long ", 40),
		StartsAt: time.Date(2026, 2, 10, 20, 30, 0, 0, time.UTC), EndsAt: time.Date(2026, 2, 10, 23, 0, 0, 0, time.UTC),
		Status: eventide.EventPublished, VenueID: "v1", Revision: 3, CreatedAt: created, UpdatedAt: created.Add(time.Hour)}
	summer := &eventide.Event{ID: "e2", Title: "Summer", StartsAt: time.Date(2026, 7, 1, 18, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 7, 1, 20, 0, 0, 0, time.UTC), Status: eventide.EventCancelled, CancelReason: "Rain",
		VenueID: "v1", CreatedAt: created, UpdatedAt: created}
	ny := &eventide.Event{ID: "e3", Title: "Webinar", StartsAt: time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2026, 11, 1, 15, 0, 0, 0, time.UTC), Status: eventide.EventPublished, Online: true,
		OnlineURL: "https://meet.example.com/x", TimeZone: "America/New_York", CreatedAt: created, UpdatedAt: created}
	venue := &eventide.Venue{ID: "v1", Name: "Clube", Address: "Rua 1", City: "Lisbon", TimeZone: "Europe/Lisbon"}
	var b bytes.Buffer
	err := calendar.Write(&b, "Feed", []calendar.Entry{
		{Event: winter, Venue: venue, Zone: "Europe/Lisbon"},
		{Event: summer, Venue: venue, Zone: "Europe/Lisbon"},
		{Event: ny, Zone: "America/New_York", Waitlisted: true, OnlineURL: ny.OnlineURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	cal := parse(t, b.Bytes())
	if v, _ := cal.Props.Text(goical.PropVersion); v != "2.0" {
		t.Errorf("VERSION %q", v)
	}
	if cal.Props.Get(goical.PropProductID) == nil {
		t.Error("no PRODID")
	}
	evs := cal.Events()
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	want := []struct {
		ev      *eventide.Event
		status  string
		seq     int
		tzid    string
		summary string
	}{
		{winter, "CONFIRMED", 3, "Europe/Lisbon", winter.Title},
		{summer, "CANCELLED", 0, "Europe/Lisbon", "Cancelled: Summer"},
		{ny, "TENTATIVE", 0, "America/New_York", "Webinar"},
	}
	for i, w := range want {
		e := evs[i]
		if uid, _ := e.Props.Text(goical.PropUID); uid != calendar.UID(w.ev.ID) {
			t.Errorf("event %d UID %q", i, uid)
		}
		if st, _ := e.Props.Text(goical.PropStatus); st != w.status {
			t.Errorf("event %d STATUS %q, want %q", i, st, w.status)
		}
		if seq, err := e.Props.Get(goical.PropSequence).Int(); err != nil || seq != w.seq {
			t.Errorf("event %d SEQUENCE %d (%v), want %d", i, seq, err, w.seq)
		}
		if s, _ := e.Props.Text(goical.PropSummary); s != w.summary {
			t.Errorf("event %d SUMMARY %q, want %q", i, s, w.summary)
		}
		start, end := e.Props.Get(goical.PropDateTimeStart), e.Props.Get(goical.PropDateTimeEnd)
		if start.Params.Get(goical.PropTimezoneID) != w.tzid || end.Params.Get(goical.PropTimezoneID) != w.tzid {
			t.Errorf("event %d TZID %q/%q, want %q", i, start.Params.Get(goical.PropTimezoneID), end.Params.Get(goical.PropTimezoneID), w.tzid)
		}
		if got := instant(t, cal, start); !got.Equal(w.ev.StartsAt) {
			t.Errorf("event %d DTSTART %s names %s through the VTIMEZONE, want %s", i, start.Value, got, w.ev.StartsAt)
		}
		if got := instant(t, cal, end); !got.Equal(w.ev.EndsAt) {
			t.Errorf("event %d DTEND names %s, want %s", i, got, w.ev.EndsAt)
		}
		if stamp, err := e.Props.DateTime(goical.PropDateTimeStamp, nil); err != nil || !stamp.Equal(w.ev.UpdatedAt) {
			t.Errorf("event %d DTSTAMP %s (%v), want %s", i, stamp, err, w.ev.UpdatedAt)
		}
	}
	// Summer time in Lisbon is written as local 19:00 (UTC+1), winter as 20:30 (UTC+0).
	if v := evs[1].Props.Get(goical.PropDateTimeStart).Value; v != "20260701T190000" {
		t.Errorf("summer DTSTART %q, want local 20260701T190000", v)
	}
	if v := evs[0].Props.Get(goical.PropDateTimeStart).Value; v != "20260210T203000" {
		t.Errorf("winter DTSTART %q, want local 20260210T203000", v)
	}
	// Escaped text reads back as written (CR LF as LF).
	if d, _ := evs[0].Props.Text(goical.PropDescription); d != strings.ReplaceAll(winter.Description, "\r\n", "\n") {
		t.Errorf("DESCRIPTION read back as %q", d)
	}
	if loc, _ := evs[0].Props.Text(goical.PropLocation); loc != "Clube, Rua 1, Lisbon" {
		t.Errorf("LOCATION %q", loc)
	}
	if d, _ := evs[1].Props.Text(goical.PropDescription); !strings.HasPrefix(d, "Cancelled: Rain") {
		t.Errorf("a cancelled event's DESCRIPTION %q", d)
	}
	if u := evs[2].Props.Get(goical.PropURL); u == nil || u.Value != ny.OnlineURL {
		t.Errorf("URL %q", u)
	}
	// One VTIMEZONE per zone; Lisbon's 2026 has its two changes (and the start of the span).
	zones := map[string]int{}
	for _, c := range cal.Children {
		if c.Name == goical.CompTimezone {
			zones[c.Props.Get(goical.PropTimezoneID).Value] = len(c.Children)
		}
	}
	if len(zones) != 2 || zones["Europe/Lisbon"] != 3 || zones["America/New_York"] != 3 {
		t.Errorf("VTIMEZONEs %v, want Lisbon and New York with 3 observances each", zones)
	}
	// Without an online link, an entry carries none.
	var pub bytes.Buffer
	if err := calendar.Write(&pub, "x", []calendar.Entry{{Event: ny, Zone: "America/New_York"}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(pub.String(), "meet.example.com") {
		t.Error("an entry without OnlineURL leaked the link")
	}
}

func TestWriteUTCAndZoneWithoutChanges(t *testing.T) {
	e := &eventide.Event{ID: "e", Title: "T", StartsAt: time.Date(2027, 3, 3, 9, 0, 0, 0, time.UTC),
		EndsAt: time.Date(2027, 3, 3, 10, 0, 0, 0, time.UTC), Status: eventide.EventPublished}
	for _, z := range []string{"", "UTC", "Asia/Tokyo", "Asia/Kolkata"} {
		var b bytes.Buffer
		if err := calendar.Write(&b, "x", []calendar.Entry{{Event: e, Zone: z}}); err != nil {
			t.Fatal(err)
		}
		cal := parse(t, b.Bytes())
		p := cal.Events()[0].Props.Get(goical.PropDateTimeStart)
		if got := instant(t, cal, p); !got.Equal(e.StartsAt) {
			t.Errorf("zone %q: DTSTART %s names %s, want %s", z, p.Value, got, e.StartsAt)
		}
	}
}

func TestTokens(t *testing.T) {
	k := calendar.NewKeys("server secret of at least thirty-two bytes")
	tok := k.Token("u1", "")
	id, ok := k.UserOf(tok)
	if !ok || id != "u1" || !k.Valid(tok, "u1", "") {
		t.Fatalf("token %q: %q %v", tok, id, ok)
	}
	if k.Valid(tok, "u1", "new secret") || k.Valid(tok, "u2", "") {
		t.Error("a token is valid for another secret or user")
	}
	if calendar.NewKeys("another server secret, also long enough").Valid(tok, "u1", "") {
		t.Error("a token is valid under another server key")
	}
	for _, bad := range []string{"", "u1", "u1.", ".abc", "u1.short", strings.Repeat("x", 300)} {
		if _, ok := k.UserOf(bad); ok {
			t.Errorf("UserOf(%q) ok", bad)
		}
	}
	if a, b := calendar.NewSecret(), calendar.NewSecret(); a == b || len(a) < 40 {
		t.Errorf("secrets %q %q", a, b)
	}
}

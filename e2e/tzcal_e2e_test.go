package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goical "github.com/emersion/go-ical"

	"github.com/eventide/server/calendar"
)

// createEventQ creates an event and returns what this file's tests read of it.
const createEventQ = `mutation($i: CreateEventInput!){ createEvent(input: $i){ id timeZone startsAtLocal endsAtLocal online onlineUrl venue { id } } }`

func eventInput(start time.Time, extra map[string]any) map[string]any {
	in := map[string]any{"title": "Event", "startsAt": start.UTC().Format(time.RFC3339), "endsAt": start.Add(2 * time.Hour).UTC().Format(time.RFC3339), "capacity": 5}
	for k, v := range extra {
		in[k] = v
	}
	return map[string]any{"i": in}
}

// badField asserts a BAD_USER_INPUT error naming field.
func (ts *testServer) badField(field, token, query string, vars map[string]any) {
	ts.t.Helper()
	r := ts.mustCode("BAD_USER_INPUT", token, query, vars)
	if got, _ := r.Errors[0].Extensions["field"].(string); got != field {
		ts.t.Fatalf("field = %q, want %q (%s)", got, field, r.Errors[0].Message)
	}
}

// TestEventValidationE2E: a new event may not start in the past; endsAt after startsAt; zones,
// online links and the zone of an online event without a venue are checked, each naming its field.
func TestEventValidationE2E(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	soon := time.Now().Add(24 * time.Hour)
	ts.badField("startsAt", org.Token, createEventQ, eventInput(time.Now().Add(-time.Hour), nil))
	in := eventInput(soon, nil)
	in["i"].(map[string]any)["endsAt"] = soon.Add(-time.Hour).UTC().Format(time.RFC3339)
	ts.badField("endsAt", org.Token, createEventQ, in)
	ts.badField("timeZone", org.Token, createEventQ, eventInput(soon, map[string]any{"online": true}))
	ts.badField("timeZone", org.Token, createEventQ, eventInput(soon, map[string]any{"online": true, "timeZone": "Mars/Olympus"}))
	ts.badField("timeZone", org.Token, createEventQ, eventInput(soon, map[string]any{"timeZone": "Local"}))
	ts.badField("onlineUrl", org.Token, createEventQ, eventInput(soon, map[string]any{"online": true, "timeZone": "UTC", "onlineUrl": "javascript:alert(1)"}))
	ts.badField("onlineUrl", org.Token, createEventQ, eventInput(soon, map[string]any{"onlineUrl": "https://meet.example.com/x"}))
	ts.badField("timeZone", org.Token, `mutation{ createVenue(input:{name:"V", address:"A", city:"C", timeZone:"Europe/Nowhere"}){ id } }`, nil)

	var v struct{ CreateVenue struct{ ID, TimeZone string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name:"V", address:"A", city:"Lisbon", timeZone:"Europe/Lisbon"}){ id timeZone } }`, nil, &v)
	ts.badField("timeZone", org.Token, createEventQ, eventInput(soon, map[string]any{"venueId": v.CreateVenue.ID, "timeZone": "Asia/Tokyo"}))

	// The zone of an online event without a venue, and its local times.
	start := time.Date(time.Now().Year()+1, time.July, 1, 16, 0, 0, 0, time.UTC)
	var ok struct {
		CreateEvent struct {
			ID, TimeZone, StartsAtLocal, EndsAtLocal string
			Online                                   bool
			OnlineURL                                *string
		}
	}
	ts.mustData(org.Token, createEventQ, eventInput(start, map[string]any{"online": true, "timeZone": "America/New_York", "onlineUrl": "https://meet.example.com/x"}), &ok)
	e := ok.CreateEvent
	wantStart := start.Add(-4 * time.Hour).Format("2006-01-02T15:04:05") // EDT
	if e.TimeZone != "America/New_York" || e.StartsAtLocal != wantStart || !e.Online || e.OnlineURL == nil {
		t.Fatalf("online event %+v, want startsAtLocal %s", e, wantStart)
	}
	// Existing events may be moved; the past rule is for new ones.
	ts.moveEvent(org, e.ID, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
}

// TestVenueZoneUpdateAndRemovalE2E: an event shows its venue's zone; updateVenue (creator or
// admin only) changes it for every event there, past the caches; updateEvent removes a venue
// when venueId is null and leaves it when absent.
func TestVenueZoneUpdateAndRemovalE2E(t *testing.T) {
	onBothStores(t, testVenueZoneUpdateAndRemoval)
}

// onBothStores runs test against a server on the embedded SQLite store and one on MongoDB (the
// in-process FerretDB).
func onBothStores(t *testing.T, test func(t *testing.T, ts *testServer)) {
	t.Run("SQLite", func(t *testing.T) { test(t, startServer(t, nil)) })
	t.Run("MongoDB", func(t *testing.T) { test(t, startServer(t, onMongoDB(t, nil))) })
}

func testVenueZoneUpdateAndRemoval(t *testing.T, ts *testServer) {
	org, other := ts.organizer("Org"), ts.organizer("Other")
	var v struct{ CreateVenue struct{ ID, TimeZone string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name:"Hall", address:"1 Rua", city:"Lisbon", capacity: 50, timeZone:"Europe/Lisbon"}){ id timeZone } }`, nil, &v)
	var plain struct{ CreateVenue struct{ TimeZone string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name:"Plain", address:"2 Rua", city:"Nowhere"}){ timeZone } }`, nil, &plain)
	if plain.CreateVenue.TimeZone != "UTC" {
		t.Fatalf("a venue without a zone: %q", plain.CreateVenue.TimeZone)
	}
	start := time.Date(time.Now().Year()+1, time.July, 1, 18, 0, 0, 0, time.UTC)
	var c struct{ CreateEvent struct{ ID string } }
	ts.mustData(org.Token, createEventQ, eventInput(start, map[string]any{"venueId": v.CreateVenue.ID}), &c)
	id := c.CreateEvent.ID
	ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": id}, nil)

	const q = `query($id: ID!){ event(id: $id){ timeZone startsAtLocal venue { id city timeZone } } }`
	type view struct {
		Event struct {
			TimeZone, StartsAtLocal string
			Venue                   *struct{ ID, City, TimeZone string }
		}
	}
	read := func(token string) view {
		t.Helper()
		var out view
		ts.mustData(token, q, map[string]any{"id": id}, &out)
		return out
	}
	// The zone alone, without the venue in the selection: the kept answer must still depend on
	// the venue.
	zoneOnly, _ := json.Marshal(map[string]any{"query": `query($id: ID!){ event(id: $id){ timeZone startsAtLocal } }`, "variables": map[string]any{"id": id}})
	for range 2 { // the second anonymous read is a kept response
		if got := read(""); got.Event.TimeZone != "Europe/Lisbon" || got.Event.StartsAtLocal != start.Add(time.Hour).Format("2006-01-02T15:04:05") {
			t.Fatalf("before: %+v", got)
		}
		if _, _, raw := ts.rawPost("", "", zoneOnly); !bytes.Contains(raw, []byte("Europe/Lisbon")) {
			t.Fatalf("before, zone only: %s", raw)
		}
	}

	const upd = `mutation($id: ID!, $i: UpdateVenueInput!){ updateVenue(id: $id, input: $i){ id name city timeZone capacity } }`
	ts.mustCode("FORBIDDEN", other.Token, upd, map[string]any{"id": v.CreateVenue.ID, "i": map[string]any{"timeZone": "Europe/Berlin"}})
	ts.mustCode("UNAUTHENTICATED", "", upd, map[string]any{"id": v.CreateVenue.ID, "i": map[string]any{"timeZone": "Europe/Berlin"}})
	ts.badField("timeZone", org.Token, upd, map[string]any{"id": v.CreateVenue.ID, "i": map[string]any{"timeZone": "Berlin"}})
	ts.mustCode("NOT_FOUND", org.Token, upd, map[string]any{"id": "0123456789abcdef01234567", "i": map[string]any{"name": "x"}})
	var u struct {
		UpdateVenue struct {
			Name, City, TimeZone string
			Capacity             *int
		}
	}
	ts.mustData(org.Token, upd, map[string]any{"id": v.CreateVenue.ID, "i": map[string]any{"city": "Berlin", "timeZone": "Europe/Berlin"}}, &u)
	if u.UpdateVenue.Name != "Hall" || u.UpdateVenue.City != "Berlin" || u.UpdateVenue.TimeZone != "Europe/Berlin" || u.UpdateVenue.Capacity == nil || *u.UpdateVenue.Capacity != 50 {
		t.Fatalf("updateVenue = %+v (absent fields must stay)", u.UpdateVenue)
	}
	got := read("")
	if got.Event.TimeZone != "Europe/Berlin" || got.Event.Venue.City != "Berlin" || got.Event.StartsAtLocal != start.Add(2*time.Hour).Format("2006-01-02T15:04:05") {
		t.Fatalf("after updateVenue, the anonymous (cached) view is stale: %+v", got)
	}
	if _, _, raw := ts.rawPost("", "", zoneOnly); !bytes.Contains(raw, []byte("Europe/Berlin")) {
		t.Fatalf("after updateVenue, the kept zone-only answer is stale: %s", raw)
	}
	var inBerlin struct{ Events struct{ TotalCount int } }
	ts.mustData("", `{ events(filter: {city: "berlin"}){ totalCount } }`, nil, &inBerlin)
	if inBerlin.Events.TotalCount != 1 {
		t.Fatalf("events in Berlin after the venue moved: %d", inBerlin.Events.TotalCount)
	}
	// An admin may change anyone's venue; capacity null makes it unknown.
	ts.mustData(ts.admin().Token, upd, map[string]any{"id": v.CreateVenue.ID, "i": map[string]any{"capacity": nil}}, &u)
	if u.UpdateVenue.Capacity != nil {
		t.Fatalf("capacity null kept %d", *u.UpdateVenue.Capacity)
	}

	// Absent venueId leaves the venue; null removes it, keeping the zone.
	const updEv = `mutation($id: ID!, $i: UpdateEventInput!){ updateEvent(id: $id, input: $i){ title timeZone venue { id } } }`
	var ue struct {
		UpdateEvent struct {
			Title, TimeZone string
			Venue           *struct{ ID string }
		}
	}
	ts.mustData(org.Token, updEv, map[string]any{"id": id, "i": map[string]any{"title": "Renamed"}}, &ue)
	if ue.UpdateEvent.Venue == nil || ue.UpdateEvent.Venue.ID != v.CreateVenue.ID {
		t.Fatalf("an update without venueId lost the venue: %+v", ue.UpdateEvent)
	}
	ts.mustData(org.Token, updEv, map[string]any{"id": id, "i": map[string]any{"venueId": nil}}, &ue)
	if ue.UpdateEvent.Venue != nil || ue.UpdateEvent.TimeZone != "Europe/Berlin" || ue.UpdateEvent.Title != "Renamed" {
		t.Fatalf("venueId: null: %+v", ue.UpdateEvent)
	}
	if got := read(""); got.Event.Venue != nil {
		t.Fatalf("the removed venue is still shown: %+v", got)
	}
	// An online event that loses its venue must name its zone.
	ts.mustData(org.Token, updEv, map[string]any{"id": id, "i": map[string]any{"venueId": v.CreateVenue.ID}}, &ue)
	ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {online: true, onlineUrl: "https://meet.example.com/r"}){ id } }`, map[string]any{"id": id}, nil)
	ts.badField("timeZone", org.Token, updEv, map[string]any{"id": id, "i": map[string]any{"venueId": nil}})
	ts.mustData(org.Token, updEv, map[string]any{"id": id, "i": map[string]any{"venueId": nil, "timeZone": "Asia/Tokyo"}}, &ue)
	if ue.UpdateEvent.Venue != nil || ue.UpdateEvent.TimeZone != "Asia/Tokyo" {
		t.Fatalf("online event without venue: %+v", ue.UpdateEvent)
	}
}

// TestOnlineURLVisibilityE2E: an online event's link is seen by its organizer, admins and
// confirmed attendees only; anonymous answers, kept or not, never hold it.
func TestOnlineURLVisibilityE2E(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	const link = "https://meet.example.com/secret-room-42"
	var c struct{ CreateEvent struct{ ID string } }
	ts.mustData(org.Token, createEventQ, eventInput(time.Now().Add(48*time.Hour), map[string]any{"online": true, "onlineUrl": link, "timeZone": "Europe/Lisbon", "capacity": 1}), &c)
	id := c.CreateEvent.ID
	ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": id}, nil)
	confirmed, waiting, stranger := ts.signUp("Confirmed"), ts.signUp("Waiting"), ts.signUp("Stranger")
	for _, s := range []session{confirmed, waiting} {
		ts.mustData(s.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
	}
	body, _ := json.Marshal(map[string]any{"query": `query($id: ID!){ event(id: $id){ id online onlineUrl } events { edges { node { id onlineUrl } } } }`, "variables": map[string]any{"id": id}})
	h0, _ := ts.responseCache()
	for i := range 3 {
		status, _, raw := ts.rawPost("", "", body)
		if status != http.StatusOK || bytes.Contains(raw, []byte("secret-room")) || !bytes.Contains(raw, []byte(`"online":true`)) {
			t.Fatalf("anonymous answer %d (status %d): %s", i, status, raw)
		}
	}
	if h1, _ := ts.responseCache(); h1 < h0+2 {
		t.Fatalf("the anonymous answer was not kept and served (hits %v -> %v); the test would prove nothing", h0, h1)
	}
	for _, c := range []struct {
		who   string
		token string
		sees  bool
	}{
		{"organizer", org.Token, true}, {"admin", ts.admin().Token, true}, {"confirmed", confirmed.Token, true},
		{"waitlisted", waiting.Token, false}, {"stranger", stranger.Token, false},
	} {
		_, _, raw := ts.rawPost(c.token, "", body)
		if got := bytes.Count(raw, []byte(link)); (got == 2) != c.sees || (got != 0 && got != 2) {
			t.Errorf("%s sees the link %d times, want it in both fields: %v: %s", c.who, got, c.sees, raw)
		}
	}
	// After the confirmed attendee read it, an anonymous answer still has none.
	if _, _, raw := ts.rawPost("", "", body); bytes.Contains(raw, []byte("secret-room")) {
		t.Fatalf("anonymous answer after an attendee's: %s", raw)
	}
	// The waitlisted one is promoted when the confirmed one cancels, and then sees it.
	ts.mustData(confirmed.Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
	if _, _, raw := ts.rawPost(waiting.Token, "", body); !bytes.Contains(raw, []byte(link)) {
		t.Fatalf("the promoted attendee does not see the link: %s", raw)
	}
	if _, _, raw := ts.rawPost(confirmed.Token, "", body); bytes.Contains(raw, []byte(link)) {
		t.Fatalf("a cancelled attendee still sees the link: %s", raw)
	}
}

// getICS fetches a calendar file; token is a bearer token or "".
func (ts *testServer) getICS(url, token string) (int, http.Header, []byte) {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, raw
}

// parseICS checks the framing (CRLF, 75-octet lines) and parses with emersion/go-ical.
func parseICS(t *testing.T, raw []byte) *goical.Calendar {
	t.Helper()
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\r\n")), []byte("\r\n")) {
		if len(line) > 75 || bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d: %q", i+1, line)
		}
	}
	cal, err := goical.NewDecoder(bytes.NewReader(raw)).Decode()
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, raw)
	}
	return cal
}

type icsEvent struct {
	uid, status, tzid, start, url string
	seq                           int
}

func icsEvents(t *testing.T, cal *goical.Calendar) map[string]icsEvent {
	t.Helper()
	out := map[string]icsEvent{}
	for _, e := range cal.Events() {
		uid, _ := e.Props.Text(goical.PropUID)
		st, _ := e.Props.Text(goical.PropStatus)
		seq, err := e.Props.Get(goical.PropSequence).Int()
		if err != nil {
			t.Fatal(err)
		}
		ds := e.Props.Get(goical.PropDateTimeStart)
		ie := icsEvent{uid: uid, status: st, tzid: ds.Params.Get(goical.PropTimezoneID), start: ds.Value, seq: seq}
		if u := e.Props.Get(goical.PropURL); u != nil {
			ie.url = u.Value
		}
		tz := false
		for _, c := range cal.Children {
			tz = tz || (c.Name == goical.CompTimezone && c.Props.Get(goical.PropTimezoneID).Value == ie.tzid)
		}
		if !tz {
			t.Fatalf("event %s: no VTIMEZONE for TZID %q", uid, ie.tzid)
		}
		if e.Props.Get(goical.PropDateTimeStamp) == nil {
			t.Fatalf("event %s has no DTSTAMP", uid)
		}
		out[uid] = ie
	}
	return out
}

// TestCalendarFilesE2E: GET /events/{id}.ics and the personal feed, parsed by a calendar
// library: UID stable per event, SEQUENCE bumped by each change, STATUS:CANCELLED, DTSTART with
// the event's TZID and its VTIMEZONE; drafts and unknown tokens 404; resetCalendarToken retires
// the old URL; the feed's token never reaches the log.
func TestCalendarFilesE2E(t *testing.T) { onBothStores(t, testCalendarFiles) }

func testCalendarFiles(t *testing.T, ts *testServer) {
	org := ts.organizer("Org")
	var v struct{ CreateVenue struct{ ID string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name:"Hall, the big one", address:"1 Rua", city:"Lisbon", timeZone:"Europe/Lisbon"}){ id } }`, nil, &v)
	start := time.Date(time.Now().Year()+1, time.January, 15, 20, 0, 0, 0, time.UTC)
	var a, b struct{ CreateEvent struct{ ID string } }
	ts.mustData(org.Token, createEventQ, eventInput(start, map[string]any{"venueId": v.CreateVenue.ID, "capacity": 1, "title": "Fado; night, live"}), &a)
	ts.mustData(org.Token, createEventQ, eventInput(start.Add(24*time.Hour), map[string]any{"online": true, "onlineUrl": "https://meet.example.com/b", "timeZone": "America/New_York"}), &b)
	ida, idb := a.CreateEvent.ID, b.CreateEvent.ID

	// A draft: 404 to anonymous, served to its organizer.
	if st, _, raw := ts.getICS(ts.base+"/events/"+ida+".ics", ""); st != http.StatusNotFound || !bytes.Contains(raw, []byte("NOT_FOUND")) {
		t.Fatalf("anonymous draft: %d %s", st, raw)
	}
	if st, _, _ := ts.getICS(ts.base+"/events/"+ida+".ics", org.Token); st != http.StatusOK {
		t.Fatalf("organizer's draft: %d", st)
	}
	for _, id := range []string{ida, idb} {
		ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": id}, nil)
	}
	if st, _, _ := ts.getICS(ts.base+"/events/0123456789abcdef01234567.ics", ""); st != http.StatusNotFound {
		t.Fatalf("unknown event: %d", st)
	}

	get := func(id, token string) icsEvent {
		t.Helper()
		st, h, raw := ts.getICS(ts.base+"/events/"+id+".ics", token)
		if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/calendar") {
			t.Fatalf("GET %s.ics: %d %s: %s", id, st, h.Get("Content-Type"), raw)
		}
		evs := icsEvents(t, parseICS(t, raw))
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		return evs[calendar.UID(id)]
	}
	e1 := get(ida, "")
	if e1.uid != calendar.UID(ida) || e1.status != "CONFIRMED" || e1.tzid != "Europe/Lisbon" || e1.start != start.Format("20060102T150405") {
		t.Fatalf("published event: %+v", e1)
	}
	ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Fado night"}){ id } }`, map[string]any{"id": ida}, nil)
	e2 := get(ida, "")
	if e2.uid != e1.uid || e2.seq <= e1.seq {
		t.Fatalf("after an edit: UID %q -> %q, SEQUENCE %d -> %d", e1.uid, e2.uid, e1.seq, e2.seq)
	}
	// The online event's link is in no public file, and in its organizer's.
	if eb := get(idb, ""); eb.url != "" || eb.tzid != "America/New_York" {
		t.Fatalf("public file of the online event: %+v", eb)
	}
	if eb := get(idb, org.Token); eb.url != "https://meet.example.com/b" {
		t.Fatalf("the organizer's file of the online event: %+v", eb)
	}

	// The personal feed: one confirmed, one waitlisted.
	user, first := ts.signUp("Attendee"), ts.signUp("First")
	ts.mustData(first.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": ida}, nil)
	for _, id := range []string{ida, idb} {
		ts.mustData(user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
	}
	var me struct{ Me struct{ CalendarURL string } }
	ts.mustData(user.Token, `{ me { calendarUrl } }`, nil, &me)
	feedURL := me.Me.CalendarURL
	if !strings.HasPrefix(feedURL, ts.base+"/calendar/") || !strings.HasSuffix(feedURL, ".ics") {
		t.Fatalf("calendarUrl %q", feedURL)
	}
	var other struct{ User struct{ CalendarURL *string } }
	ts.mustData(first.Token, `query($id: ID!){ user(id: $id){ calendarUrl } }`, map[string]any{"id": user.ID}, &other)
	if other.User.CalendarURL != nil {
		t.Fatal("another user sees the calendarUrl")
	}
	ts.mustData(ts.admin().Token, `query($id: ID!){ user(id: $id){ calendarUrl } }`, map[string]any{"id": user.ID}, &other)
	if other.User.CalendarURL == nil || *other.User.CalendarURL != feedURL {
		t.Fatalf("admin sees %v, want %q", other.User.CalendarURL, feedURL)
	}
	feed := func(url string) map[string]icsEvent {
		t.Helper()
		st, h, raw := ts.getICS(url, "")
		if st != http.StatusOK || h.Get("Cache-Control") != "private, no-store" {
			t.Fatalf("feed: %d %v: %s", st, h, raw)
		}
		return icsEvents(t, parseICS(t, raw))
	}
	f := feed(feedURL)
	if len(f) != 2 || f[calendar.UID(ida)].status != "TENTATIVE" || f[calendar.UID(idb)].status != "CONFIRMED" ||
		f[calendar.UID(idb)].url != "https://meet.example.com/b" || f[calendar.UID(idb)].tzid != "America/New_York" {
		t.Fatalf("feed %+v", f)
	}
	// Cancelled: STATUS:CANCELLED, SEQUENCE bumped, in the public file and the feed.
	ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "storm"){ id } }`, map[string]any{"id": idb}, nil)
	if eb := get(idb, ""); eb.status != "CANCELLED" {
		t.Fatalf("cancelled event's file: %+v", eb)
	}
	f2 := feed(feedURL)
	if cb := f2[calendar.UID(idb)]; cb.status != "CANCELLED" || cb.seq <= f[calendar.UID(idb)].seq || cb.url != "" {
		t.Fatalf("cancelled event in the feed: %+v (before %+v)", cb, f[calendar.UID(idb)])
	}

	// Reset: a new URL; the old one is 404 like any made-up token, with the same body.
	var reset struct{ ResetCalendarToken string }
	ts.mustData(user.Token, `mutation{ resetCalendarToken }`, nil, &reset)
	if reset.ResetCalendarToken == feedURL || !strings.HasPrefix(reset.ResetCalendarToken, ts.base+"/calendar/") {
		t.Fatalf("reset gave %q (old %q)", reset.ResetCalendarToken, feedURL)
	}
	ts.mustData(user.Token, `{ me { calendarUrl } }`, nil, &me)
	if me.Me.CalendarURL != reset.ResetCalendarToken {
		t.Fatalf("calendarUrl after reset %q, want %q", me.Me.CalendarURL, reset.ResetCalendarToken)
	}
	if len(feed(reset.ResetCalendarToken)) != 2 {
		t.Fatal("the new URL does not serve the feed")
	}
	stOld, _, oldBody := ts.getICS(feedURL, "")
	stBad, _, badBody := ts.getICS(ts.base+"/calendar/"+user.ID+".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics", "")
	stJunk, _, junkBody := ts.getICS(ts.base+"/calendar/junk.ics", "")
	strip := func(b []byte) string { // the request id differs
		var e gqlResponse
		_ = json.Unmarshal(b, &e)
		if len(e.Errors) != 1 {
			return string(b)
		}
		return e.Errors[0].Message + "/" + e.code()
	}
	if stOld != http.StatusNotFound || stBad != http.StatusNotFound || stJunk != http.StatusNotFound ||
		strip(oldBody) != strip(badBody) || strip(oldBody) != strip(junkBody) || strip(oldBody) != "no such calendar/NOT_FOUND" {
		t.Fatalf("old token %d %s; forged %d %s; junk %d %s", stOld, oldBody, stBad, badBody, stJunk, junkBody)
	}
	token := strings.TrimSuffix(strings.TrimPrefix(reset.ResetCalendarToken, ts.base+"/calendar/"), ".ics")
	if logs := ts.logs.String(); strings.Contains(logs, token) || !strings.Contains(logs, "/calendar/…") {
		t.Fatal("the access log holds the feed token, or no feed request at all")
	}
	if st, h, _ := ts.getICS(ts.base+"/events/"+ida+".ics", ""); st != http.StatusOK || h.Get("RateLimit-Limit") == "" {
		t.Fatalf("the .ics route is not throttled like /graphql: %d %v", st, h)
	}
}

// TestCalendarThrottledE2E: the calendar routes spend the client's request budget: past it, 429
// RATE_LIMITED with Retry-After.
func TestCalendarThrottledE2E(t *testing.T) {
	cfg := testConfig(t)
	cfg.ThrottleLimit = 3
	ts := startServer(t, cfg)
	var last int
	var h http.Header
	var raw []byte
	for range 5 {
		last, h, raw = ts.getICS(ts.base+"/calendar/junk.ics", "")
	}
	if last != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !bytes.Contains(raw, []byte("RATE_LIMITED")) {
		t.Fatalf("after 5 requests with a budget of 3: %d %v %s", last, h, raw)
	}
}

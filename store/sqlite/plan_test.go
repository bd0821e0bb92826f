package sqlite

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// plan returns the EXPLAIN QUERY PLAN lines of q, its parameters bound to NULL.
func plan(t testing.TB, st *Store, q string, args ...any) []string {
	t.Helper()
	if args == nil {
		args = make([]any, strings.Count(q, "?"))
	}
	rows, err := st.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	return out
}

// hotQueries are the event queries the resolvers make (resolvers/helpers.go eventQuery, a user's
// organizedEvents, a venue's events) and the search.
func hotQueries(now time.Time) map[string]eventide.EventQuery {
	pub := []eventide.EventStatus{eventide.EventPublished}
	later := now.Add(30 * 24 * time.Hour)
	id := "0123456789abcdef01234567"
	return map[string]eventide.EventQuery{
		"upcoming":        {Statuses: pub, EndsAfter: &now},
		"city":            {Statuses: pub, EndsAfter: &now, City: "lisbon"},
		"tag":             {Statuses: pub, EndsAfter: &now, Tag: "jazz"},
		"organizer":       {OrganizerID: id, NoDrafts: true},
		"organizer own":   {OrganizerID: id},
		"venue":           {Statuses: pub, EndsAfter: &now, VenueID: id},
		"range":           {Statuses: pub, StartsFrom: &now, StartsTo: &later},
		"search":          {Statuses: pub, EndsAfter: &now, Search: "concert"},
		"search short":    {Statuses: pub, EndsAfter: &now, Search: "ab"},
		"drafts of":       {Statuses: []eventide.EventStatus{eventide.EventDraft}, DraftsOf: id},
		"cancelled":       {Statuses: []eventide.EventStatus{eventide.EventCancelled}, EndsAfter: &now},
		"city and tag":    {Statuses: pub, EndsAfter: &now, City: "lisbon", Tag: "jazz"},
		"venue and range": {Statuses: pub, VenueID: id, StartsFrom: &now, StartsTo: &later},
	}
}

// fullScan matches a plan line that reads a whole events, tags or registrations table or index.
var fullScan = regexp.MustCompile(`^SCAN (e|t|events|event_tags|registrations)\b`)

// TestQueryPlans asserts that every query the store makes on events and registrations is an
// index search, and that no page of events is sorted after the fact: the planner walks an index
// in (starts_at, id) order and stops after the page.
func TestQueryPlans(t *testing.T) {
	st := openTest(t)
	now := time.Now()
	check := func(name, q string, args []any, page bool) {
		t.Helper()
		lines := plan(t, st, q, args...)
		for _, l := range lines {
			if fullScan.MatchString(l) {
				t.Errorf("%s: a full scan: %q\n%s\n%s", name, l, q, strings.Join(lines, "\n"))
			}
			if page && strings.Contains(l, "TEMP B-TREE") {
				t.Errorf("%s: sorted after the fact: %q\n%s\n%s", name, l, q, strings.Join(lines, "\n"))
			}
		}
		t.Logf("%s: %s", name, strings.Join(lines, " | "))
	}
	for name, q := range hotQueries(now) {
		b := buildEvents(q)
		s, a := b.pageSQL(nil, 20)
		// A single status is the resolvers' case; a list of statuses (organizedEvents) may sort
		// its own organizer's events.
		ordered := len(q.Statuses) == 1 || q.OrganizerID == ""
		check(name+" first page", s, a, ordered)
		s, a = b.pageSQL(&cursor{kind: "e", key: "1", id: "0123456789abcdef01234567"}, 20)
		check(name+" next page", s, a, ordered)
		s, a = b.countSQL()
		check(name+" count", s, a, false)
		s, a = b.nextEndSQL()
		check(name+" next end", s, a, false)
	}
	// A search with few matches reads them by rowid and sorts them (at most fewMatchesLimit).
	b := buildEvents(hotQueries(now)["search"])
	b.fromMatches("[1,2,3]")
	s, a := b.pageSQL(nil, 20)
	check("search with few matches", s, a, false)
	// A user's registrations: each half walks registrations_user_start, forwards or backwards.
	id := "0123456789abcdef01234567"
	past := &cursor{kind: "m", key: "9000000000000000", id: id}
	for _, rs := range []eventide.RegistrationStatus{"", eventide.RegistrationWaitlisted} {
		f := eventide.RegistrationFilter{Now: now, Status: rs}
		for _, c := range []struct {
			name     string
			upcoming bool
			after    *cursor
		}{{"upcoming", true, nil}, {"upcoming next", true, &cursor{kind: "m", key: "1", id: id}}, {"past", false, nil}, {"past next", false, past}} {
			q, a, _ := userRegsPageSQL(id, f, c.upcoming, c.after, 21)
			check("user registrations "+c.name+" "+string(rs), q, a, true)
			if got := plan(t, st, q, a...); !strings.Contains(strings.Join(got, " "), "registrations_user_start") {
				t.Errorf("user registrations %s: %v, want a walk of registrations_user_start", c.name, got)
			}
		}
	}
	for _, q := range st.stmts.texts {
		check("prepared", q, nil, strings.Contains(q, "ORDER BY"))
	}
	// The count of upcoming published events reads one covering index range only.
	b = buildEvents(hotQueries(now)["upcoming"])
	s, a = b.countSQL()
	if got := plan(t, st, s, a...); len(got) != 1 || !strings.Contains(got[0], "COVERING INDEX events_status_end") {
		t.Errorf("upcoming count: %v, want one covering range of events_status_end", got)
	}
	// The next end of upcoming events is the first entry of that range: a search of
	// events_status_end, no scan of the range (min() stops at its first row).
	s, a = b.nextEndSQL()
	if got := plan(t, st, s, a...); len(got) != 1 || !strings.Contains(got[0], "SEARCH e USING COVERING INDEX events_status_end") {
		t.Errorf("upcoming next end: %v, want one search of events_status_end", got)
	}
	// The first page of upcoming events walks events_status_start.
	s, a = b.pageSQL(nil, 20)
	if got := plan(t, st, s, a...); len(got) != 1 || !strings.Contains(got[0], "INDEX events_status_start") {
		t.Errorf("upcoming page: %v, want a walk of events_status_start", got)
	}
}

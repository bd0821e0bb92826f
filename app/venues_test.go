package app_test

import (
	"context"
	"testing"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
)

func TestVenues(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	other := e.user(t, "Otto", eventide.RoleOrganizer)
	admin := e.user(t, "Ada", eventide.RoleAdmin)

	t.Run("ErrZoneCheckedFirst", func(t *testing.T) {
		_, err := e.Venues.Create(as(org), app.VenueInput{Name: ptr(""), Address: ptr(""), City: ptr(""), TimeZone: ptr("Mars/Olympus")})
		if eventide.ErrorCode(err) != eventide.CodeBadUserInput || err.(*eventide.Error).Field != "timeZone" {
			t.Fatalf("error %v, want BAD_USER_INPUT on timeZone", err)
		}
	})
	t.Run("ErrCapacity", func(t *testing.T) {
		_, err := e.Venues.Create(as(org), app.VenueInput{Name: ptr("Hall"), Address: ptr("1 St"), City: ptr("Porto"), Capacity: app.To(ptr(0))})
		wantErr(t, err, eventide.CodeBadUserInput, "capacity: must be between 1 and 1000000")
	})
	v := e.venue(t, org, "Hall", "Porto", "Europe/Lisbon", nil)
	if v.CreatedByID != org.ID || v.City != "Porto" {
		t.Fatalf("venue %+v", v)
	}
	t.Run("ErrForbiddenForAnother", func(t *testing.T) {
		_, err := e.Venues.Update(as(other), v.ID, app.VenueInput{Name: ptr("Mine")})
		wantErr(t, err, eventide.CodeForbidden, "only the venue's creator or an admin may change it")
	})
	t.Run("OKAdminIsRecordedAndCapacityRemoved", func(t *testing.T) {
		got, err := e.Venues.Update(as(admin), v.ID, app.VenueInput{City: ptr(" Braga "), Capacity: app.To[*int](nil)})
		must(t, err)
		stored, err := e.store.VenueByID(context.Background(), v.ID)
		must(t, err)
		if got.City != "Braga" || stored.City != "Braga" || stored.Capacity != nil {
			t.Fatalf("returned %+v, stored %+v", got, stored)
		}
		want := `updateVenue on venue ` + v.ID + ` ("Hall") of ` + org.ID
		if n := e.notes.take(); len(n) != 1 || n[0].Kind != app.NoteAdminAction || n[0].Message != want {
			t.Fatalf("notes %+v, want %q", n, want)
		}
	})
}

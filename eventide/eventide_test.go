package eventide

import "testing"

func TestWhoManagesWhat(t *testing.T) {
	org := &User{ID: "o", Role: RoleOrganizer}
	other := &User{ID: "x", Role: RoleOrganizer}
	admin := &User{ID: "a", Role: RoleAdmin}
	ev := &Event{ID: "e", OrganizerID: "o", Status: EventDraft}
	venue := &Venue{ID: "v", CreatedByID: "o"}
	for _, c := range []struct {
		name                           string
		u                              *User
		manage, venue, account, others bool
	}{
		{"Anonymous", nil, false, false, false, false},
		{"Organizer", org, true, true, true, false},
		{"Another", other, false, false, false, false},
		{"Admin", admin, true, true, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.u.CanManage(ev); got != c.manage {
				t.Errorf("CanManage = %v", got)
			}
			if got := ev.VisibleTo(c.u); got != c.manage {
				t.Errorf("a draft VisibleTo = %v, want what CanManage says (%v)", got, c.manage)
			}
			if got := c.u.CanManageVenue(venue); got != c.venue {
				t.Errorf("CanManageVenue = %v", got)
			}
			if got := c.u.CanSeeAccount(org); got != c.account {
				t.Errorf("CanSeeAccount(organizer) = %v", got)
			}
			if got := c.u.ActsForOther(ev); got != c.others {
				t.Errorf("ActsForOther = %v", got)
			}
		})
	}
}

func TestFolds(t *testing.T) {
	for in, want := range map[string]string{" Ann@Example.COM\t": "ann@example.com", "LISBON ": "lisbon", "": ""} {
		if got := NormalizeEmail(in); got != want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", in, got, want)
		}
		if got := FoldCity(in); got != want {
			t.Errorf("FoldCity(%q) = %q, want %q", in, got, want)
		}
	}
}

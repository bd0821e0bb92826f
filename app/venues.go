package app

import (
	"context"
	"fmt"

	"github.com/eventide/server/eventide"
)

// VenueService creates and changes venues.
type VenueService struct{ *base }

// Create stores a new venue of the viewer's (Name, Address and City are required; the zone
// defaults to UTC). Invalid input is BAD_USER_INPUT naming the field.
func (s *VenueService) Create(ctx context.Context, in VenueInput) (*eventide.Venue, error) {
	v := &eventide.Venue{CreatedByID: eventide.ViewerFrom(ctx).ID, TimeZone: eventide.DefaultTimeZone}
	// The zone is checked first, then the rest in the order of the input.
	if err := applyVenueInput(v, VenueInput{TimeZone: in.TimeZone}); err != nil {
		return nil, err
	}
	in.TimeZone = nil
	for _, p := range []**string{&in.Name, &in.Address, &in.City} {
		if *p == nil {
			empty := ""
			*p = &empty
		}
	}
	if err := applyVenueInput(v, in); err != nil {
		return nil, err
	}
	if err := s.Store.CreateVenue(ctx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Update changes venue id: its creator or an admin (FORBIDDEN otherwise); its events take its
// new city and zone.
func (s *VenueService) Update(ctx context.Context, id string, in VenueInput) (*eventide.Venue, error) {
	viewer := eventide.ViewerFrom(ctx)
	v, err := s.Store.UpdateVenue(ctx, id, func(v *eventide.Venue) error {
		if !viewer.CanManageVenue(v) {
			return eventide.Errorf(eventide.CodeForbidden, "only the venue's creator or an admin may change it")
		}
		return applyVenueInput(v, in)
	})
	if err != nil {
		return nil, err
	}
	if viewer.Role == eventide.RoleAdmin && viewer.ID != v.CreatedByID {
		s.adminAction(ctx, fmt.Sprintf("updateVenue on venue %s (%q) of %s", v.ID, v.Name, v.CreatedByID))
	}
	return v, nil
}
